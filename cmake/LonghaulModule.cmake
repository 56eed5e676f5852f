# lh_add_module(<name> [DEPS targets...] [CUDA_DEPS targets...])
#
# Builds lh_<name> from the .c files of the calling folder, with the folder as
# its public include directory.  When CUDA is enabled, the .cu files under
# <folder>/cuda/ build into lh_<name>_cuda (for sm_80 and sm_90, runtime API
# only), which lh_<name> links and which defines LH_<NAME>_HAVE_CUDA=1.
function(lh_add_module name)
  cmake_parse_arguments(M "" "" "DEPS;CUDA_DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  if(NOT sources)
    return()
  endif()
  string(TOUPPER ${name} upper)
  add_library(lh_${name} STATIC ${sources})
  target_include_directories(lh_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(lh_${name} PUBLIC lh_common ${M_DEPS})
  file(GLOB cuda_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cu)
  if(LONGHAUL_HAVE_CUDA AND cuda_sources)
    add_library(lh_${name}_cuda STATIC ${cuda_sources})
    target_include_directories(lh_${name}_cuda PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}
                               ${CMAKE_CURRENT_SOURCE_DIR}/cuda)
    target_link_libraries(lh_${name}_cuda PUBLIC lh_common CUDA::cudart ${M_CUDA_DEPS})
    target_compile_options(lh_${name}_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
    target_link_libraries(lh_${name} PUBLIC lh_${name}_cuda)
    target_compile_definitions(lh_${name} PUBLIC LH_${upper}_HAVE_CUDA=1)
  else()
    target_compile_definitions(lh_${name} PUBLIC LH_${upper}_HAVE_CUDA=0)
  endif()
endfunction()
