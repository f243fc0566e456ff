# mr_index_retrieval: expert retrievers (FAISS C API, MinHash co-occurrence,
# popularity) and the router that sends each query to its top-p experts.
file(GLOB MR_RETRIEVAL_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/retr*.c ${CMAKE_CURRENT_SOURCE_DIR}/router*.c)
add_library(mr_index_retrieval STATIC ${MR_RETRIEVAL_SOURCES})
target_include_directories(mr_index_retrieval PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(mr_index_retrieval PUBLIC mr_common mr_hashing faiss_c_api
                      OpenMP::OpenMP_C Threads::Threads m)
# retr_set.c reads and writes the retrievers.json manifest.
target_link_libraries(mr_index_retrieval PUBLIC PkgConfig::JANSSON)
