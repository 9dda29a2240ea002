#pragma once
// Files compiled into the binary at build time (api/embed.cmake): the
// OpenAPI document and the dashboard. No file is read at run time.

#include <string_view>

namespace imeilock::api {

/// One embedded file.
struct asset {
  std::string_view name;         ///< e.g. "openapi.json", "ui/app.js"
  std::string_view content_type; ///< e.g. "application/json"
  std::string_view data;
};

/// The embedded file called `name`, or nullptr.
const asset* find_asset(std::string_view name);

} // namespace imeilock::api
