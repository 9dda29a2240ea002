#pragma once
// Settings of the SIM layer (registry, SIM actors, order actor, store):
// the `sim_layer:` section of imeilockd.yaml. No CAF.
//
//   sim_layer:
//     shards: 2                # registry shards; one per CAF worker is right
//     passivate_after: 60s     # a SIM actor idle this long is folded back into its row
//     max_in_flight: 100000    # observations handed over, not yet acknowledged; beyond: overloaded
//     max_queued_per_sim: 256  # events waiting behind one SIM's write; beyond: overloaded
//     stop_timeout: 5s         # stop(): how long to wait for in-flight work to drain
//     activity_flush: 10s      # write-behind of when SIMs were last observed (a crash loses up
//                              # to this plus activity_resolution)
//     activity_resolution: 60s # a SIM's times written again once they move to another step
//     store:
//       backend: sqlite        # sqlite (embedded file) | postgresql (a server, README)
//       path: /var/lib/imeilockd/imeilockd.db
//       synchronous: normal    # normal: survives kill -9; full: also power loss (fsync per commit)
//       max_queue: 65536       # changes waiting for the writer; beyond: store overloaded
//       max_queue_wait: 2s     # the oldest waiting longer than this: store overloaded (0s: off)
//       max_batch: 4096        # most changes in one group commit
//       readers: 2             # reader connections (API reads)
//       commit_delay: 0s       # test knob: the writer sleeps before each commit (a slow disk)
//       postgresql:
//         conninfo: ""           # libpq connection string (backend postgresql)
//         conninfo_file: ""      # or a file holding it (the password); not world-readable

#include "config/error.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace imeilock::config {
class section;
}

namespace imeilock::actors {

struct sim_layer_config {
  /// Registry shards (each an actor owning a slice of the SIMs). 1..256.
  std::uint32_t shards = 2;
  /// A SIM actor with no message for this long is passivated. 1s..1d.
  std::chrono::milliseconds passivate_after{60'000};
  /// Observations in flight (submitted, not yet acknowledged) before
  /// submit() answers ack::overloaded. 1..10M.
  std::uint32_t max_in_flight = 100'000;
  /// Events queued behind one SIM's in-flight write before it sheds. 1..100k.
  std::uint32_t max_queued_per_sim = 256;
  /// How long stop() waits for in-flight observations and orders to drain.
  std::chrono::milliseconds stop_timeout{5'000};
  /// How often the shards write when SIMs were last observed (lock::sim_activity)
  /// to the store, in batches; also at stop. An observation that changes
  /// nothing is never a write of its own: a crash loses at most this much of
  /// "last observed" (never a lock state). 100ms..1h.
  std::chrono::milliseconds activity_flush{10'000};
  /// A SIM's activity is written again only when one of its times moves to
  /// another step of this length (a first observation, and the first with
  /// an IMEI, at once): a SIM observed every second is written once a step,
  /// not once a flush. The rows in memory stay exact, and a stop writes them
  /// all; a crash loses at most this plus `activity_flush` of "last
  /// observed". 1s (every second written, as before)..1h.
  std::chrono::milliseconds activity_resolution{60'000};
  /// The store (backend, SQLite file or PostgreSQL server, durability, group commit).
  store::store_config store;

  /// Succeeds when consistent, else config::ec::invalid naming the key.
  expected<void> validate() const;
};

/// Reads the `sim_layer:` section strictly (config::error on a bad value or
/// unknown key); absent keys keep the values already in `cfg`.
void load(sim_layer_config& cfg, config::section s);

} // namespace imeilock::actors
