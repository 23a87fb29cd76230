# Layering by construction (../shared/DESIGN.md section 1): each layer may include only the libraries
# its row allows. The check reads every source of a layer at configure time and fails naming the file
# and the offending include, and it checks what each layer's target links.

# include patterns per third-party library
set(_AV_PAT_torch "#[ \t]*include[ \t]*[<\"](torch|ATen|c10|caffe2)/")
set(_AV_PAT_opencv "#[ \t]*include[ \t]*[<\"]opencv2/")
set(_AV_PAT_dcmtk "#[ \t]*include[ \t]*[<\"]dcmtk/")
set(_AV_PAT_yaml "#[ \t]*include[ \t]*[<\"]yaml-cpp/")

function(_av_forbid layer_dir libs)
  file(GLOB_RECURSE _srcs CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/${layer_dir}/*.h" "${CMAKE_SOURCE_DIR}/${layer_dir}/*.cpp")
  foreach(_src IN LISTS _srcs)
    file(STRINGS "${_src}" _lines REGEX "#[ \t]*include")
    foreach(_lib IN LISTS libs)
      foreach(_line IN LISTS _lines)
        if(_line MATCHES "${_AV_PAT_${_lib}}")
          file(RELATIVE_PATH _rel "${CMAKE_SOURCE_DIR}" "${_src}")
          message(FATAL_ERROR "layering: ${_rel} includes ${_lib} (${_line}); ${layer_dir}/ must not use ${_lib}. See ../shared/DESIGN.md section 1.")
        endif()
      endforeach()
    endforeach()
  endforeach()
endfunction()

# A library confined to one adapter: only files matching `allowed_regex` may include it.
function(_av_confine lib allowed_regex)
  file(GLOB_RECURSE _srcs CONFIGURE_DEPENDS
       "${CMAKE_SOURCE_DIR}/vision/*" "${CMAKE_SOURCE_DIR}/models/*" "${CMAKE_SOURCE_DIR}/datasets/*"
       "${CMAKE_SOURCE_DIR}/pipelines/*")
  foreach(_src IN LISTS _srcs)
    if(NOT _src MATCHES "\\.(h|cpp)$")
      continue()
    endif()
    file(RELATIVE_PATH _rel "${CMAKE_SOURCE_DIR}" "${_src}")
    if(_rel MATCHES "${allowed_regex}")
      continue()
    endif()
    file(STRINGS "${_src}" _lines REGEX "${_AV_PAT_${lib}}")
    if(_lines)
      message(FATAL_ERROR "layering: ${_rel} includes ${lib}; only ${allowed_regex} may. See ../shared/DESIGN.md section 1.")
    endif()
  endforeach()
endfunction()

# What a layer target links must stay inside its row of the table.
function(_av_forbid_links target)
  get_target_property(_links ${target} LINK_LIBRARIES)
  foreach(_forbidden IN LISTS ARGN)
    if(_forbidden IN_LIST _links)
      message(FATAL_ERROR "layering: target ${target} links ${_forbidden}, which its layer must not use. See ../shared/DESIGN.md section 1.")
    endif()
  endforeach()
endfunction()

# cv::Mat and torch::Tensor meet only in datasets/ (the one bridge, both ways): elsewhere no file may mention
# cv::Mat together with a tensor's raw memory (data_ptr, from_blob).
function(_av_no_mat_tensor_bridge)
  file(GLOB_RECURSE _srcs CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/vision/*" "${CMAKE_SOURCE_DIR}/models/*"
       "${CMAKE_SOURCE_DIR}/pipelines/*")
  foreach(_src IN LISTS _srcs)
    if(NOT _src MATCHES "\\.(h|cpp)$")
      continue()
    endif()
    file(STRINGS "${_src}" _mats REGEX "cv::Mat")
    file(STRINGS "${_src}" _raw REGEX "(data_ptr|from_blob)")
    if(_mats AND _raw)
      file(RELATIVE_PATH _rel "${CMAKE_SOURCE_DIR}" "${_src}")
      list(GET _raw 0 _line)
      message(FATAL_ERROR "layering: ${_rel} turns a cv::Mat into a tensor or back (${_line}); only datasets/ may. See ../shared/DESIGN.md section 1.")
    endif()
  endforeach()
endfunction()

function(attnvision_check_layering)
  _av_forbid(vision/files "torch;opencv;dcmtk;yaml")
  _av_forbid(vision "torch;yaml")
  _av_forbid(models "opencv;dcmtk;yaml")
  _av_forbid(datasets "yaml")
  _av_forbid(pipelines/cli "torch;opencv;dcmtk;yaml")
  _av_confine(dcmtk "^vision/dicom")
  _av_confine(yaml "^pipelines/config")
  _av_no_mat_tensor_bridge()
  _av_forbid_links(attnvision_files attnvision_torch attnvision_opencv attnvision_dcmtk yaml-cpp)
  _av_forbid_links(attnvision_vision attnvision_torch yaml-cpp attnvision_models)
  _av_forbid_links(attnvision_models attnvision_opencv attnvision_dcmtk yaml-cpp attnvision_vision)
  _av_forbid_links(attnvision_datasets yaml-cpp attnvision_pipelines)
  _av_forbid_links(attnvision attnvision_torch attnvision_opencv attnvision_dcmtk yaml-cpp)
endfunction()
