// Route table construction; see routes.h. The trie is built with ordered
// maps and numbered in pre-order, so children always follow their parent
// (the verifier relies on it) and the layout is deterministic.
#include "compiler/routes.h"

#include <map>
#include <memory>
#include <string>

namespace vakt::compiler {
namespace {

struct Node {
  std::map<std::string, std::unique_ptr<Node>> literal;  // bytewise order
  std::unique_ptr<Node> param;
  std::string param_shape;       // "" = any
  std::string param_shape_name;  // for messages
  const IrRoute* shape_owner = nullptr;
  std::map<std::string, uint32_t> methods;  // method -> route index
  uint32_t id = 0;
};

void Number(Node* n, uint32_t& next, std::vector<Node*>& order) {
  n->id = next++;
  order.push_back(n);
  for (auto& [seg, child] : n->literal) Number(child.get(), next, order);
  if (n->param) Number(n->param.get(), next, order);
}

}  // namespace

bool BuildRouteTable(const IrProgram& prog, Tables& tables, bytecode::BundleData& data,
                     dsl::Diagnostics& diags) {
  Node root;
  bool ok = true;
  data.params.clear();
  for (uint32_t ri = 0; ri < prog.routes.size(); ++ri) {
    const IrRoute& r = prog.routes[ri];
    Node* n = &root;
    data.routes[ri].first_param = static_cast<uint32_t>(data.params.size());
    data.routes[ri].param_count = static_cast<uint32_t>(r.param_names.size());
    for (const auto& seg : r.segments) {
      if (!seg.is_param) {
        auto& child = n->literal[seg.text];
        if (!child) child = std::make_unique<Node>();
        n = child.get();
        continue;
      }
      bytecode::ParamRecord pr;
      pr.name = tables.Str(seg.text);
      pr.shape = seg.shape.empty() ? bytecode::kNone : tables.Regex(seg.shape);
      data.params.push_back(pr);
      if (!n->param) {
        n->param = std::make_unique<Node>();
        n->param_shape = seg.shape;
        n->param_shape_name = seg.shape_name;
        n->shape_owner = &r;
      } else if (n->param_shape != seg.shape) {
        diags.Error(r.loc, "parameter `" + seg.text + "` of route `" + r.method + " " +
                               r.path_template + "` has shape `" +
                               (seg.shape_name.empty() ? "any" : seg.shape_name) +
                               "` but another route has shape `" +
                               (n->param_shape_name.empty() ? "any" : n->param_shape_name) +
                               "` at the same position; one position takes one shape");
        diags.Note(n->shape_owner->loc, "the other route is here");
        ok = false;
      }
      n = n->param.get();
    }
    // Duplicates were already reported by semantic analysis; keep the first.
    n->methods.emplace(r.method, ri);
  }
  uint32_t next = 0;
  std::vector<Node*> order;
  Number(&root, next, order);
  data.nodes.clear();
  data.edges.clear();
  data.methods.clear();
  for (Node* n : order) {
    bytecode::TrieNode tn{};
    tn.first_edge = static_cast<uint32_t>(data.edges.size());
    tn.edge_count = static_cast<uint32_t>(n->literal.size());
    for (auto& [seg, child] : n->literal) {
      data.edges.push_back({tables.Str(seg), child->id});
    }
    tn.param_child = n->param ? n->param->id : bytecode::kNone;
    tn.param_shape = (n->param && !n->param_shape.empty()) ? tables.Regex(n->param_shape)
                                                           : bytecode::kNone;
    tn.first_method = static_cast<uint32_t>(data.methods.size());
    tn.method_count = static_cast<uint32_t>(n->methods.size());
    for (auto& [m, ri] : n->methods) data.methods.push_back({tables.Str(m), ri});
    data.nodes.push_back(tn);
  }
  return ok;
}

}  // namespace vakt::compiler
