// A plain Asio UDP echo server: the ceiling row of bench/radius_vs_freeradius.sh
// (issue 12). One io_context, one socket, one thread by default, no
// processing: every datagram is sent back as it came, so the rate the RADIUS
// generator reaches against it is what this machine moves through one socket
// with Asio when the server does nothing. radius_load runs against it with
// --verify 0 (an echoed request is no Accounting-Response).
//
//   udp_echo_server [--listen 127.0.0.1:0] [--threads 1]
// Prints "PORT <port>" then serves until stdin closes. --threads N: N
// threads each with its own io_context and SO_REUSEPORT socket (the kernel
// spreads source addresses), the shape of radius.io_threads.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {

/// One socket echoing with one receive outstanding: receive, send back, receive again.
struct echo {
  udp::socket sock;
  udp::endpoint from;
  std::array<char, 4097> buf{};

  echo(asio::io_context& io, const udp::endpoint& where) : sock(io, where.protocol()) {
    sock.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>{true});
    sock.set_option(asio::socket_base::receive_buffer_size{4 << 20});
    sock.set_option(asio::socket_base::send_buffer_size{4 << 20});
    sock.bind(where);
  }

  void receive() {
    sock.async_receive_from(
        asio::buffer(buf), from, [this](boost::system::error_code ec, std::size_t n) {
          if (ec == asio::error::operation_aborted)
            return;
          if (!ec) {
            boost::system::error_code ignore; // UDP: a send that fails is a lost datagram
            sock.send_to(asio::buffer(buf.data(), n), from, 0, ignore);
          }
          receive();
        });
  }
};

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  unsigned threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--listen") {
      const auto colon = v.rfind(':');
      if (colon == std::string::npos) {
        std::cerr << "--listen HOST:PORT expected, got " << v << "\n";
        return 2;
      }
      host = v.substr(0, colon);
      port = static_cast<unsigned short>(std::stoul(v.substr(colon + 1)));
    } else if (a == "--threads") {
      threads = static_cast<unsigned>(std::stoul(v));
    } else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (threads == 0)
    threads = 1;
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::unique_ptr<echo>> echoes;
  udp::endpoint where{asio::ip::make_address(host), port};
  for (unsigned t = 0; t < threads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
    echoes.push_back(std::make_unique<echo>(*ios.back(), where));
    where.port(echoes.back()->sock.local_endpoint().port()); // port 0: the others share the first's
    echoes.back()->receive();
  }
  std::printf("PORT %u\n", unsigned{where.port()});
  std::fflush(stdout);
  std::vector<std::thread> running;
  for (auto& io : ios)
    running.emplace_back([&io] { io->run(); });
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  for (auto& io : ios)
    io->stop();
  for (auto& t : running)
    t.join();
  return 0;
}
