# Every dependency comes from Debian 12 packages (see scripts/setup.sh for the list).
find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs dnn)
find_package(DCMTK REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

# Torch as an imported target whose headers are SYSTEM includes (no warnings from them).
add_library(attnvision_torch INTERFACE)
target_link_libraries(attnvision_torch INTERFACE ${TORCH_LIBRARIES} ${CMAKE_DL_LIBS})
target_include_directories(attnvision_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(attnvision_torch INTERFACE ${TORCH_CXX_FLAGS})
# at::parallel_for is a header template whose `#pragma omp parallel` is compiled into the caller: without
# OpenMP it silently runs its whole range on the calling thread. LibTorch runs on the same GNU OpenMP (libgomp),
# so the callers' parallel regions share its thread pool.
target_link_libraries(attnvision_torch INTERFACE OpenMP::OpenMP_CXX)

# oneDNN, the library LibTorch itself runs its CPU convolutions and matrix products on (Debian's libdnnl2, the
# same build): models/kernels/ calls its primitives directly where ATen cannot fuse or keep the weights packed.
find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.hpp REQUIRED)
find_library(DNNL_LIBRARY dnnl REQUIRED)
add_library(attnvision_onednn INTERFACE)
target_link_libraries(attnvision_onednn INTERFACE ${DNNL_LIBRARY})
target_include_directories(attnvision_onednn SYSTEM INTERFACE ${DNNL_INCLUDE_DIR})

add_library(attnvision_opencv INTERFACE)
target_link_libraries(attnvision_opencv INTERFACE ${OpenCV_LIBS})
target_include_directories(attnvision_opencv SYSTEM INTERFACE ${OpenCV_INCLUDE_DIRS})

add_library(attnvision_dcmtk INTERFACE)
target_link_libraries(attnvision_dcmtk INTERFACE ${DCMTK_LIBRARIES})
target_include_directories(attnvision_dcmtk SYSTEM INTERFACE ${DCMTK_INCLUDE_DIRS})
