# Tests of the request model and the VM (bytecode/request*.cc, vm.cc).
vakt_test(request_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/request_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto)
vakt_test(request_json_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/request_json_test.cc
          LIBS vakt::bytecode)
vakt_test(vm_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vm_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto)
