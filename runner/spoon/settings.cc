#include "runner/spoon/settings.h"

namespace ladle::runner::spoon {

namespace {

bool Alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string SpoonNameProblem(const std::string& name) {
  if (name.empty()) return "a spoon needs a name";
  if (name.size() > 64) return "a spoon's name is at most 64 characters (it is the hostname)";
  if (!Alnum(name[0])) return "a spoon's name starts with a letter or a digit";
  for (char c : name) {
    if (!Alnum(c) && c != '_' && c != '.' && c != '-') {
      return std::string("a spoon's name has letters, digits, '_', '.' and '-' only, not '") + c + "'";
    }
  }
  return "";
}

}  // namespace ladle::runner::spoon
