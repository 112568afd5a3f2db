// A process's CPU time from /proc/PID/stat, for --server-pid: what the server spent per request.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kq::bench {

// utime + stime of every thread of pid, live and exited, in µs (clock-tick resolution, usually 10 ms);
// nullopt if the process does not exist or /proc is unreadable.
std::optional<uint64_t> process_cpu_us(int pid);
// Parses the text of /proc/PID/stat (exposed for tests): the comm field may hold spaces and ')'.
std::optional<uint64_t> parse_proc_stat_cpu_us(std::string_view stat, long ticks_per_s);

}  // namespace kq::bench
