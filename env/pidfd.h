// pidfds (Linux 5.3; waitid's P_PIDFD 5.4) for env/: a descriptor that names
// one process for good, so a signal or a wait never reaches a process that
// got the pid later. Through syscall(): glibc 2.36's <sys/pidfd.h> lacks
// extern "C" (fixed in 2.37), so its wrappers do not link from C++.
#ifndef LADLE_ENV_PIDFD_H_
#define LADLE_ENV_PIDFD_H_

#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace ladle::env {

inline int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

inline int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

}  // namespace ladle::env

#endif  // LADLE_ENV_PIDFD_H_
