// `vakt fmt`: canonical formatting of Vakt source. Works on the token stream
// (dsl/parser.h Lex) so comments are kept; refuses files with syntax errors.
// Idempotent: Format(Format(x)) == Format(x).
#pragma once

#include <string>

#include "dsl/source.h"

namespace vakt::dsl {

// Returns the canonical text of `src`. On syntax errors, reports them to
// diags and returns src.text unchanged.
std::string FormatSource(const SourceFile& src, Diagnostics& diags);

}  // namespace vakt::dsl
