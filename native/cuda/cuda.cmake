# The CUDA backend's targets; included by the top-level CMakeLists.txt when a CUDA compiler is found.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES 90)  # Hopper (H100/H200); override with -DCMAKE_CUDA_ARCHITECTURES=...
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_RUNTIME_LIBRARY Static)  # no libcudart.so needed where it runs, only the driver
message(STATUS "loraplex: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm ${CMAKE_CUDA_ARCHITECTURES})")

set(LPX_CUDA_DIR ${CMAKE_SOURCE_DIR}/native/cuda)
file(GLOB LPX_CUDA_KERNEL_SOURCES ${LPX_CUDA_DIR}/kernels/*.cu ${LPX_CUDA_DIR}/kernels/*.cpp)
file(GLOB LPX_CUDA_CHECK_SOURCES ${LPX_CUDA_DIR}/check/*.cu ${LPX_CUDA_DIR}/check/*.cpp)
file(GLOB LPX_CUDA_BENCH_SOURCES ${LPX_CUDA_DIR}/bench/*.cu ${LPX_CUDA_DIR}/bench/*.cpp)
file(GLOB LPX_CUDA_BINDING_SOURCES ${LPX_CUDA_DIR}/binding/*.cpp)

add_library(loraplex_cuda_kernels STATIC ${LPX_CUDA_KERNEL_SOURCES})
# .cpp files of the CUDA targets include cuda_runtime.h too.
target_include_directories(loraplex_cuda_kernels PUBLIC ${CMAKE_SOURCE_DIR}/native/include
  ${CMAKE_CUDA_TOOLKIT_INCLUDE_DIRECTORIES})
target_compile_options(loraplex_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo>
  $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra -Wno-unused-parameter>)
set_target_properties(loraplex_cuda_kernels PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF)
target_link_libraries(loraplex_cuda_kernels PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)

foreach(program check bench)
  string(TOUPPER ${program} P)
  add_executable(loraplex-cuda-${program} ${LPX_CUDA_${P}_SOURCES} $<TARGET_OBJECTS:loraplex_cpu>)
  target_include_directories(loraplex-cuda-${program} PRIVATE ${CMAKE_SOURCE_DIR}/native/include)
  target_compile_options(loraplex-cuda-${program} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo>)
  target_link_libraries(loraplex-cuda-${program} PRIVATE loraplex_cuda_kernels)
  set_target_properties(loraplex-cuda-${program} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/cuda)
endforeach()

if(LPX_CUDA_BINDING_SOURCES)
  # The CPU objects bring the shared argument checks (check_paged_attention, check_sampling_params, ...).
  add_library(loraplex_cuda SHARED ${LPX_CUDA_BINDING_SOURCES} $<TARGET_OBJECTS:loraplex_cpu> ${CMAKE_JS_SRC})
  # Not in build/Release: node-gyp-build loads the first .node file there, which must be the CPU addon.
  set_target_properties(loraplex_cuda PROPERTIES PREFIX "" SUFFIX ".node" LINKER_LANGUAGE CUDA
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/cuda)
  target_include_directories(loraplex_cuda PRIVATE ${CMAKE_JS_INC} ${NODE_ADDON_API_DIR} ${CMAKE_SOURCE_DIR}/native/include)
  target_compile_options(loraplex_cuda PRIVATE -O3 -Wall -Wextra -Wno-unused-parameter)
  target_link_libraries(loraplex_cuda PRIVATE loraplex_cuda_kernels ${CMAKE_JS_LIB})
endif()
