# Writes OUTPUT, a C++ source that holds the web UI's files (NAMES, a
# comma-separated list of files in DIR) as byte arrays, so that the ladle
# binary serves its UI with nothing installed beside it.
# Run by runner/CMakeLists.txt: cmake -DDIR=... -DNAMES=a,b -DOUTPUT=... -P embed.cmake
string(REPLACE "," ";" names "${NAMES}")
set(arrays "")
set(table "")
set(index 0)
foreach(name IN LISTS names)
  file(READ "${DIR}/${name}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND arrays "const unsigned char kFile${index}[] = {\n    ${bytes}0};\n")
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(APPEND table "    {\"${name}\", reinterpret_cast<const char*>(kFile${index}), ${size}},\n")
  math(EXPR index "${index} + 1")
endforeach()
set(text "// Generated from runner/web/ by runner/web/embed.cmake: do not edit.
#include \"runner/serve/web_ui.h\"

namespace ladle::runner {
namespace {

${arrays}
}  // namespace

const WebAsset kWebAssets[] = {
${table}};
const size_t kWebAssetCount = ${index};

}  // namespace ladle::runner
")
# Rewritten only when it changes, so that an unchanged UI compiles nothing.
file(WRITE "${OUTPUT}.tmp" "${text}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUTPUT}.tmp" "${OUTPUT}")
file(REMOVE "${OUTPUT}.tmp")
