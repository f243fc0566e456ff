# Unit tests of the retrieval half of index/ (retr_*.c, router*.c): one
# executable per source file. With -DMOEREC_TSAN=ON, test_retr_faiss's
# concurrent search-while-adding case runs under ThreadSanitizer.
foreach(t retr retr_idmap retr_file retr_faiss retr_faiss_io retr_pop retr_minhash
          router router_retrieve router_build)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c)
    mr_unit_test(test_index_${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_${t}.c
                 LIBS mr_index_retrieval mr_common m)
  endif()
endforeach()
