// The admin subcommands of the `vakt` CLI (publish, versions, diff, rollout,
// rollback, agents, revoke, audit, decisions, tokens, whoami): flags, calls through
// AdminClient (admin_client.h), aligned tables or one JSON document
// (--json). Kept out of compiler/vakt_main.cc, which only dispatches here.
// Reference: docs/cli-admin.md. Tested by tests/admin_cli_test.cc.
//
// Exit codes: 0 ok; 1 the server refused (invalid argument, not found,
// permission denied, a limit, compile errors); 2 usage (flags, the token
// file); 3 the server cannot be reached, refused the credentials or failed.
#pragma once

#include <string_view>

namespace vakt::admin {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

// The lines `vakt help` shows for the admin commands.
extern const char kAdminUsageText[];

// True for the commands RunAdminCommand handles (argv[1]).
bool IsAdminCommand(std::string_view command);

// Runs `vakt COMMAND ...` (argv[1] is the command); returns the exit code.
int RunAdminCommand(int argc, char** argv);

}  // namespace vakt::admin
