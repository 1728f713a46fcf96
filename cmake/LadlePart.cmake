# ladle_part(TARGET [DEPS target...] [SOURCES file...] [EXCLUDE file...])
#
# One static library per folder: the folder's *.cc (not its subfolders).
# The library's include directory holds that folder alone, as a link
# build/include/TARGET/<folder> -> <source folder>, so `#include "runner/exec/x.h"`
# works only in parts that link ladle_runner_exec: a part that includes the
# header of a part it does not depend on fails to compile. The order of the
# parts is docs/design.md "Parts and layers"; scripts/check-layers.sh checks it.
# Off: measured not to pay (docs/benchmarks.md "Build"; tests/bench/build_bench.sh
# builds with it on and off). Each part would precompile these once.
option(LADLE_PCH "Precompile the standard and nlohmann-json headers once per part" OFF)
set(LADLE_PCH_HEADERS <algorithm> <chrono> <functional> <map> <memory> <mutex> <string>
  <string_view> <vector> <nlohmann/json.hpp>)

function(ladle_part target)
  cmake_parse_arguments(P "" "" "DEPS;SOURCES;EXCLUDE" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  foreach(name ${P_EXCLUDE})
    list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/${name})
  endforeach()
  add_library(${target} STATIC ${sources} ${P_SOURCES})
  file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set(root ${PROJECT_BINARY_DIR}/include/${target})
  get_filename_component(parent ${root}/${folder} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR} ${root}/${folder} SYMBOLIC)
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${root}>
    $<INSTALL_INTERFACE:include/ladle>)
  target_link_libraries(${target} PUBLIC ${P_DEPS})
  if(LADLE_PCH)
    target_precompile_headers(${target} PRIVATE ${LADLE_PCH_HEADERS})
  endif()
endfunction()
