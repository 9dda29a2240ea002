#include "lock/caveats.hpp"

#include <array>
#include <cassert>
#include <cstddef>

namespace imeilock::lock {
namespace {

// The product text's own sentences, quoted; where it names its own tool
// ("Mobile Manager") or a screen we do not have, the sentence says "the
// dashboard" instead. Each entry says where the product text has it.
constexpr std::array<caveat_entry, 8> table{{
    // "Enabling IMEI Locking on Live SIMs", the N.B. on the Bar order, said of
    // any Bar order an operator places.
    {caveat::bar_lead_time, "bar_lead_time",
     "N.B. the Bar order is subject to regular bar lead times and may not complete immediately, "
     "some data usage may occur before the SIM is barred."},
    // The same N.B., as the product text words it for the bar a violation raises.
    {caveat::imei_lock_bar, "imei_lock_bar",
     "N.B. the IMEI Locking Bar order is subject to regular bar lead times and may not complete "
     "immediately, some data usage may occur before the SIM is barred."},
    // "Disabling IMEI Locking".
    {caveat::test_in_another_device, "test_in_another_device",
     "Disable IMEI Locking before testing the SIM in another device: while the lock is on, using "
     "the SIM in another device is a violation (a Bar order, unless its network only alerts). "
     "Disabling IMEI Locking \"is recommended if testing "
     "in another device is required\"; it will \"clear any IMEI set on the SIM and allows the SIM "
     "to be used freely between devices again\"."},
    // "Unbarring After the IMEI Lock is Triggered", option 1's N.B. (the tool tip).
    {caveat::keep_lock, "keep_lock",
     "N.B. If this unbar option is selected while the SIM is not in the original device, the IMEI "
     "Locking Bar will not trigger again unless the SIM is used in another (i.e. 3rd) device. This "
     "means that the SIM could use data in the 2nd device while showing as locked to the original "
     "device on the dashboard. We advise that the SIM is moved back into the original device "
     "before unbarring with this option."},
    // Option 1 under imei_lock.strict (R10's caveat closed).
    {caveat::keep_lock_strict, "keep_lock",
     "N.B. Strict enforcement is on: if this unbar option is selected while the SIM is not in the "
     "original device, the SIM will be barred again at its next use in any device other than the "
     "original one. We advise that the SIM is moved back into the original device before "
     "unbarring with this option."},
    // Option 2's N.B. (the tool tip).
    {caveat::update_to_last_seen, "update_to_last_seen",
     "N.B. If the SIM has been used in multiple devices after the IMEI Locking Bar has been "
     "triggered the last seen IMEI is set to the first device used. The lock will therefore be "
     "set to this IMEI."},
    // "Enabling IMEI Locking on Activation".
    {caveat::lock_on_activation, "lock_on_activation",
     "After the SIM has activated it will display as locking to the next seen IMEI, once the SIM "
     "is used in a device for the 1st time the IMEI lock will be updated to that device's IMEI."},
    // The introduction's N.B.
    {caveat::no_imei, "no_imei",
     "N.B. IMEI information is not mandatory information that all networks provide. If no IMEI "
     "is provided by the Network, no change event can be triggered and so the SIM will not be "
     "barred."},
}};

constexpr bool in_enum_order() {
  for (std::size_t i = 0; i < table.size(); ++i)
    if (static_cast<std::size_t>(table[i].id) != i)
      return false;
  return true;
}
static_assert(in_enum_order(), "caveats: the table is indexed by the enum");

} // namespace

std::span<const caveat_entry> caveats() {
  return table;
}

std::string_view caveat_key(caveat c) {
  auto i = static_cast<std::size_t>(c);
  assert(i < table.size());
  return table[i].key;
}

std::string_view caveat_text(caveat c) {
  auto i = static_cast<std::size_t>(c);
  assert(i < table.size());
  return table[i].text;
}

std::string bar_caveat(caveat c, std::string_view network, std::string_view lead_time) {
  assert(c == caveat::bar_lead_time || c == caveat::imei_lock_bar);
  std::string out{caveat_text(c)};
  if (!lead_time.empty()) {
    out += " The bar takes effect after ";
    out += network.empty() ? std::string_view{"the network"} : network;
    out += "'s bar lead time: ";
    out += lead_time;
    out += '.';
  }
  return out;
}

std::vector<std::string> order_caveats(order_type type, bool with_lock, std::string_view network,
                                       std::string_view bar_lead_time) {
  std::vector<std::string> out;
  if (type == order_type::bar)
    out.push_back(bar_caveat(caveat::bar_lead_time, network, bar_lead_time));
  if (type == order_type::enable_imei_lock || (type == order_type::activate && with_lock))
    out.emplace_back(caveat_text(caveat::test_in_another_device));
  return out;
}

} // namespace imeilock::lock
