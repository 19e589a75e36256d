# Helpers shared by the per-directory CMakeLists.

# bu_compile_flags(): warnings and sanitizers for every target below.
macro(bu_compile_flags)
  add_compile_options(-Wall -Wextra -Wstrict-prototypes -Wshadow
                      -Wno-missing-field-initializers)
  if(BU_WERROR)
    add_compile_options(-Werror)
  endif()
  add_compile_definitions(_POSIX_C_SOURCE=200809L)
  if(BU_SANITIZER)
    add_compile_options(-fsanitize=${BU_SANITIZER} -fno-omit-frame-pointer
                        -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=${BU_SANITIZER})
  endif()
endmacro()

# bu_test(NAME SOURCES... [LIBS libs...] [TIMEOUT s] [LABELS l...])
# Builds one test executable and registers it with CTest.
function(bu_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "BU_SRC_DIR=${PROJECT_SOURCE_DIR};BU_BIN_DIR=${PROJECT_BINARY_DIR}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
