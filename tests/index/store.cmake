# Tests of the store half of index/ (index/store.cmake): one executable per
# source file, plus the crash test (a forked writer killed with SIGKILL) and
# the concurrency test (run it under -DMOEREC_TSAN=ON for ThreadSanitizer).
foreach(t emb_codec cache store emb_store store_blob behaviour store_crash store_concurrent)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_${t}.c)
    mr_unit_test(test_index_${t} SOURCES test_${t}.c LIBS mr_index_store m)
  endif()
endforeach()
