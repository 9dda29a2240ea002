#include "actors/sim_layer_config.hpp"

#include "config/section.hpp"

namespace imeilock::actors {

using namespace std::chrono_literals;

expected<void> sim_layer_config::validate() const {
  if (store.backend == store::backend_kind::postgresql) {
    const auto& pg = store.postgresql;
    if (pg.conninfo.empty() == pg.conninfo_file.empty())
      return error{config::ec::invalid,
                   "backend postgresql needs exactly one of conninfo and conninfo_file",
                   "store.postgresql"};
    return {};
  }
  if (store.path.empty())
    return error{config::ec::invalid, "must not be empty", "store.path"};
  if (store.path == ":memory:")
    return error{config::ec::invalid, "an in-memory database is not durable", "store.path"};
  return {};
}

void load(sim_layer_config& cfg, config::section s) {
  s.read("shards", cfg.shards, 1u, 256u);
  s.read_duration("passivate_after", cfg.passivate_after, 1s, 86'400s);
  s.read("max_in_flight", cfg.max_in_flight, 1u, 10'000'000u);
  s.read("max_queued_per_sim", cfg.max_queued_per_sim, 1u, 100'000u);
  s.read_duration("stop_timeout", cfg.stop_timeout, 0s, 600s);
  s.read_duration("activity_flush", cfg.activity_flush, 100ms, 3'600s);
  s.read_duration("activity_resolution", cfg.activity_resolution, 1s, 3'600s);
  auto st = s.child("store");
  std::string backend =
      cfg.store.backend == store::backend_kind::postgresql ? "postgresql" : "sqlite";
  st.read("backend", backend);
  if (backend == "sqlite")
    cfg.store.backend = store::backend_kind::sqlite;
  else if (backend == "postgresql")
    cfg.store.backend = store::backend_kind::postgresql;
  else
    st.fail("backend", "must be \"sqlite\" or \"postgresql\"");
  st.read("path", cfg.store.path);
  std::string sync = cfg.store.synchronous_full ? "full" : "normal";
  st.read("synchronous", sync);
  if (sync == "normal")
    cfg.store.synchronous_full = false;
  else if (sync == "full")
    cfg.store.synchronous_full = true;
  else
    st.fail("synchronous", "must be \"normal\" or \"full\"");
  st.read("max_queue", cfg.store.max_queue, std::size_t{1}, std::size_t{10'000'000});
  st.read_duration("max_queue_wait", cfg.store.max_queue_wait, 0ms, 600'000ms);
  st.read("max_batch", cfg.store.max_batch, std::size_t{1}, std::size_t{1'000'000});
  st.read("readers", cfg.store.readers, std::size_t{1}, std::size_t{64});
  st.read_duration("commit_delay", cfg.store.commit_delay, 0ms, 10'000ms);
  auto pg = st.child("postgresql");
  pg.read("conninfo", cfg.store.postgresql.conninfo);
  pg.read("conninfo_file", cfg.store.postgresql.conninfo_file);
  pg.finish();
  st.finish();
  s.finish();
  if (auto valid = cfg.validate(); !valid)
    s.fail({}, valid.error().describe());
}

} // namespace imeilock::actors
