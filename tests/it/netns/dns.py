# A tiny DNS responder for the netns lab, standing in for Docker's embedded DNS: it answers
# on ADDRESS:53 (UDP) the A queries for the names in TABLE (one `name address` a line, read
# again at every query, so the test changes the answers by rewriting the file), NOERROR with
# no answer for another type of a known name, and NXDOMAIN for any other name.
# Usage: python3 dns.py ADDRESS TABLE
import socket
import struct
import sys

address, table = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((address, 53))


def known():
    names = {}
    try:
        with open(table) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    names[parts[0].lower().rstrip(".")] = parts[1]
    except OSError:
        pass
    return names


while True:
    query, peer = sock.recvfrom(512)
    if len(query) < 12:
        continue
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    labels, i = [], 12
    while i < len(query) and query[i] != 0 and len(labels) < 64:
        n = query[i]
        labels.append(query[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    if qdcount != 1 or i + 4 > len(query):
        continue
    qtype, qclass = struct.unpack("!HH", query[i : i + 4])
    name = ".".join(labels).lower()
    names = known()
    answers, ancount, rcode = b"", 0, 3
    if name in names:
        rcode = 0
        if qtype == 1 and qclass == 1:
            ttl, rdlength = 1, 4
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, rdlength)
            answers += socket.inet_aton(names[name])
            ancount = 1
    # QR, AA, RA; RD copied from the query.
    reply_flags = 0x8000 | 0x0400 | 0x0080 | (flags & 0x0100) | rcode
    head = struct.pack("!HHHHHH", ident, reply_flags, 1, ancount, 0, 0)
    sock.sendto(head + query[12 : i + 4] + answers, peer)
