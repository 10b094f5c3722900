# FAPI 2.0 decisions end to end (bytecode/vm.cc Decide/DecideRequest on fapi2
# routes) with a policy compiled in memory and real tokens, DPoP proofs and
# certificates (compiler/token_tool.h); the issuer and auth sections of the
# bundle (round trip, verifier, Load, disassembly).
vakt_test(fapi_vm_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/fapi_vm_test.cc
          LIBS vakt::compiler vakt::bytecode OpenSSL::Crypto simdjson::simdjson
               nlohmann_json::nlohmann_json)
