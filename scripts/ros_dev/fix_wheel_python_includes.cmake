# Included after project() (CMAKE_PROJECT_INCLUDE) when scripts/ros_dev_env.sh generates an interface package
# against the PyPI ROS wheels.
#
# Why: each message wheel's export_<pkg>__rosidl_generator_pyExport.cmake gives its imported Python-binding
# target the include dirs of the machine that built the wheel (/opt/python/cp3XX-cp3XX/include/python3.X and
# that machine's numpy). CMake refuses to generate with an imported target whose include dir does not exist.
# What: at the end of the top-level CMakeLists (before generation) every imported target's missing
# /opt/python/... include dirs are replaced with this venv's Python and numpy include dirs
# (MLKD_PYTHON_INCLUDE_DIRS, passed by the script). The installed wheel files are left as they are.
function(_mlkd_fix_wheel_python_includes)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(kept "")
    set(replaced FALSE)
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "^/opt/python/" AND NOT EXISTS "${dir}")
        set(replaced TRUE)
      else()
        list(APPEND kept "${dir}")
      endif()
    endforeach()
    if(replaced)
      list(APPEND kept ${MLKD_PYTHON_INCLUDE_DIRS})
      list(REMOVE_DUPLICATES kept)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${kept}")
    endif()
  endforeach()
endfunction()

if(NOT MLKD_PYTHON_INCLUDE_DIRS)
  message(FATAL_ERROR "MLKD_PYTHON_INCLUDE_DIRS is not set (Python and numpy include dirs of the venv)")
endif()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _mlkd_fix_wheel_python_includes)
