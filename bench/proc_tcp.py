"""The kernel's view of IPv4 TCP sockets: one parser of ``/proc/net/tcp`` (Linux).

Send and receive queues tell what a stalled connection holds in the kernel, and a
socket missing from the table has been released.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["STATES", "TcpSocket", "read_proc_tcp"]

#: include/net/tcp_states.h
STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}


class TcpSocket(NamedTuple):
    local_port: int
    remote_port: int
    state: str
    tx_queue: int
    rx_queue: int


def read_proc_tcp() -> list[TcpSocket]:
    """Every IPv4 TCP socket in this network namespace."""
    rows = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            tx, rx = (int(part, 16) for part in fields[4].split(":"))
            state = int(fields[3], 16)
            rows.append(
                TcpSocket(
                    local_port=int(fields[1].split(":")[1], 16),
                    remote_port=int(fields[2].split(":")[1], 16),
                    state=STATES.get(state, str(state)),
                    tx_queue=tx,
                    rx_queue=rx,
                )
            )
    return rows
