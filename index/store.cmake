# mr_index_store — the store half of index/: RocksDB column families,
# encodings, the sharded memory cache, behaviour sequences and SDIM tables.
file(GLOB MR_INDEX_STORE_SOURCES CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/store*.c ${CMAKE_CURRENT_SOURCE_DIR}/emb_*.c
     ${CMAKE_CURRENT_SOURCE_DIR}/cache*.c ${CMAKE_CURRENT_SOURCE_DIR}/behaviour*.c)
add_library(mr_index_store STATIC ${MR_INDEX_STORE_SOURCES})
target_link_libraries(mr_index_store PUBLIC mr_common mr_hashing PkgConfig::ROCKSDB
                      PRIVATE PkgConfig::XXHASH)
