#!/usr/bin/env python3
"""A scripted DNS upstream for fault tests (issue 10): UDP only, loopback only.

Answers every query with one A record 192.0.2.1 (owner: a pointer to the
question), NOERROR, our OPT iff the query had one. Behaviour by flag:
  --lowercase      echo the question lowercased (an upstream that ignores 0x20)
  --formerr-edns   answer FORMERR without OPT to a query with OPT (RFC 6891 §7)
  --silent SUFFIX  never answer names ending in SUFFIX (a deliberately slow zone)
  --refuse SUFFIX  answer REFUSED for names ending in SUFFIX
Names whose first label is "ttlN" get TTL N (any 32-bit value), else 300.
One log line per query on stdout: "Q <name> <qtype> opt=<0|1> case=<as received>".
Standard library only: any python3 runs it.
"""
import argparse
import socket
import struct
import sys


def read_name(pkt, off):
    labels = []
    while True:
        n = pkt[off]
        off += 1
        if n == 0:
            return labels, off
        if n & 0xC0:
            raise ValueError("compressed question")
        labels.append(pkt[off:off + n])
        off += n


def has_opt(pkt, off, arcount):
    # Only queries with the OPT as their last (only) record are expected here.
    for _ in range(arcount):
        if off + 11 > len(pkt):
            return False
        if pkt[off] == 0 and struct.unpack("!H", pkt[off + 1:off + 3])[0] == 41:
            return True
        return False
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--lowercase", action="store_true")
    ap.add_argument("--formerr-edns", action="store_true")
    ap.add_argument("--silent", default=None)
    ap.add_argument("--refuse", default=None)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.addr, a.port))
    print("ready", flush=True)
    while True:
        pkt, peer = s.recvfrom(4096)
        if len(pkt) < 12:
            continue
        qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", pkt[:12])
        if flags & 0x8000 or qd != 1:
            continue
        try:
            labels, off = read_name(pkt, 12)
        except (ValueError, IndexError):
            continue
        qtype, qclass = struct.unpack("!HH", pkt[off:off + 4])
        qend = off + 4
        opt = has_opt(pkt, qend, ar)
        name = b".".join(labels).decode("ascii", "replace") + "."
        print("Q %s %d opt=%d" % (name.lower(), qtype, int(opt)), flush=True)
        low = name.lower()
        if a.silent and low.endswith(a.silent):
            continue
        question = pkt[12:qend]
        if a.lowercase:
            question = bytes(question[:-4]).lower() + question[-4:]
        rflags = 0x8000 | (flags & 0x0110) | 0x0080  # QR, RD and CD echoed, RA
        if a.formerr_edns and opt:
            s.sendto(struct.pack("!HHHHHH", qid, rflags | 1, 1, 0, 0, 0) + question, peer)
            continue
        if a.refuse and low.endswith(a.refuse):
            hdr = struct.pack("!HHHHHH", qid, rflags | 5, 1, 0, 0, 1 if opt else 0)
            s.sendto(hdr + question + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if opt else b""), peer)
            continue
        ttl = 300
        if labels and labels[0].lower().startswith(b"ttl") and labels[0][3:].isdigit():
            ttl = int(labels[0][3:]) & 0xFFFFFFFF
        ans = b""
        count = 0
        if qtype == 1:
            ans = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + bytes([192, 0, 2, 1])
            count = 1
        hdr = struct.pack("!HHHHHH", qid, rflags, 1, count, 0, 1 if opt else 0)
        optrr = b"\x00\x00\x29\x04\xd0\x00\x00" + (b"\x80" if opt and pkt[qend + 7] & 0x80 else b"\x00") + b"\x00\x00\x00" if opt else b""
        s.sendto(hdr + question + ans + optrr, peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
