# Tests of the store half of index/ (index/store.cmake): one executable per
# source file, plus the crash test (a forked writer killed with SIGKILL) and
# the concurrency test. ThreadSanitizer: configure with -DMOEREC_TSAN=ON and
# run `ctest -R test_index_store_concurrent` (and test_index_cache); the
# suppressions file hides only races inside the uninstrumented librocksdb.
foreach(t emb_codec cache store emb_store store_blob behaviour store_crash store_concurrent)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_${t}.c)
    mr_unit_test(test_index_${t} SOURCES test_${t}.c LIBS mr_index_store m)
    if(MOEREC_TSAN)
      set_property(TEST test_index_${t} APPEND PROPERTY ENVIRONMENT
        "TSAN_OPTIONS=halt_on_error=1:suppressions=${CMAKE_CURRENT_SOURCE_DIR}/tsan-rocksdb.supp")
    endif()
  endif()
endforeach()
