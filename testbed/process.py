"""Processes of the rig: stopping them, and what Linux says they cost
(/proc/PID/stat, status, io, smaps_rollup; /proc/stat for the whole machine).

CPU times are user + system, in seconds, at the kernel's clock-tick
resolution (SC_CLK_TCK, 100 Hz here: 10 ms; a 10 s run of one busy core is
1,000 ticks, so the reading is good to 0.1%)."""

import os
import platform
import resource
import subprocess
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stop_process(proc, grace_s=10):
    """SIGTERM, then SIGKILL after `grace_s`, and wait. Does nothing to a
    process that is not running (or to None)."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Service:
    """A process of the rig started with its output in `self.log_file`
    (`self.proc`, and `self._log` the open log while it runs): stopping it,
    its log, and `with` support, one copy for Envoy and Prometheus."""

    proc = None
    _log = None
    log_file = None

    def stop(self):
        """SIGTERM, then SIGKILL, and wait; closes the log. Safe to call twice."""
        stop_process(self.proc)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        """Everything the process logged so far."""
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])


def cpu_seconds(pid):
    """user + system CPU seconds process `pid` used so far, all its threads
    (fields 14 and 15 of /proc/PID/stat); None once it is gone."""
    try:
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def children_cpu_seconds():
    """user + system CPU seconds of this process's children that have exited
    and been waited for: the final /proc/PID/stat times of a child, read
    after its last tick (a child's own /proc entry is gone once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def syscalls(pid):
    """(read, write) system calls process `pid` made so far, all threads
    (syscr, syscw of /proc/PID/io); None once it is gone."""
    try:
        fields = dict(line.split(": ", 1) for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return int(fields["syscr"]), int(fields["syscw"])
    except (OSError, KeyError, ValueError):
        return None


def status_field(pid, name):
    """An integer field of /proc/PID/status (VmRSS, VmHWM in KiB, Threads); None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kib(pid):
    """Resident memory of a live process in KiB (VmRSS); None if gone."""
    return status_field(pid, "VmRSS")


def smaps_rollup(pid):
    """The KiB fields of /proc/PID/smaps_rollup (Rss, Anonymous, ...); {} if gone."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return values


class MachineTime:
    """CPU seconds of the whole machine so far, from the first line of /proc/stat.

    `processes` is user + nice + system: time some process ran. Interrupt time
    (irq + softirq: loopback networking, mostly ours) and `steal` (the
    hypervisor ran someone else) belong to no process and are kept apart.
    Subtract two readings for an interval.
    """

    def __init__(self):
        jiffies = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
        self.processes = (jiffies[0] + jiffies[1] + jiffies[2]) / CLK_TCK
        self.irq = (jiffies[5] + jiffies[6]) / CLK_TCK
        self.steal = jiffies[7] / CLK_TCK

    def __sub__(self, earlier):
        delta = object.__new__(MachineTime)
        delta.processes = self.processes - earlier.processes
        delta.irq = self.irq - earlier.irq
        delta.steal = self.steal - earlier.steal
        return delta

    @property
    def busy(self):
        return self.processes + self.irq + self.steal


def load_average():
    """The 1-minute load average (runnable tasks, all users of the machine)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine():
    """What this machine is: CPU model, cores, memory, kernel, Python."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next((line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
