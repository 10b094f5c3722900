# The control plane's SQLite store (controlplane/sqlite_store.cc): schema and
# migrations, every Store method, corruption, disk full, locking and a SIGKILL
# crash-consistency loop. The test opens the files with SQLite directly to
# tamper with them and to hold locks, hence its own sqlite3 link.
pkg_check_modules(CP_STORE_SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
vakt_test(cp_store_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cp_store_test.cc
          LIBS vakt::controlplane PkgConfig::CP_STORE_SQLITE3)
