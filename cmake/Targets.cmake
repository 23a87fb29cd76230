# How a layer becomes a target: every source below its folder (sub-folders included, so a new head, task or
# generator folder needs no CMake edit), and one precompiled torch header shared by every torch target.

# Sources of `folder` and everything below it, minus paths matching the regexes in EXCLUDE.
function(attnvision_sources out folder)
  cmake_parse_arguments(ARG "" "" "EXCLUDE" ${ARGN})
  file(GLOB_RECURSE _srcs CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/${folder}/*.cpp")
  foreach(_re IN LISTS ARG_EXCLUDE)
    list(FILTER _srcs EXCLUDE REGEX "${_re}")
  endforeach()
  set(${out} ${_srcs} PARENT_SCOPE)
endfunction()

# torch/torch.h costs ~20 s per translation unit. It is precompiled once, in attnvision_torch_pch, and every
# target that uses torch reuses that one PCH (same compiler flags: the warnings and torch's own).
add_library(attnvision_torch_pch OBJECT "${CMAKE_SOURCE_DIR}/cmake/torch_pch.cpp")
target_link_libraries(attnvision_torch_pch PRIVATE attnvision_torch attnvision_warnings)
target_precompile_headers(attnvision_torch_pch PRIVATE <torch/torch.h>)

function(attnvision_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM attnvision_torch_pch)
endfunction()
