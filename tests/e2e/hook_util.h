// What the end-to-end tests of webhooks share: GitHub's X-Hub-Signature-256
// of a body, computed here with OpenSSL rather than with ladle's own code.
#ifndef LADLE_TESTS_E2E_HOOK_UTIL_H_
#define LADLE_TESTS_E2E_HOOK_UTIL_H_

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <string>

namespace ladle::testing {

inline std::string GithubSignature(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &n);
  std::string out = "sha256=";
  char hex[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", mac[i]);
    out += hex;
  }
  return out;
}

}  // namespace ladle::testing

#endif  // LADLE_TESTS_E2E_HOOK_UTIL_H_
