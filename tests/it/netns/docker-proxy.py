# Stands in for docker-proxy in the netns lab: the test writes this file as an executable
# named `docker-proxy` and starts it with docker-proxy's own argument shape,
#   docker-proxy -proto tcp -host-ip 127.0.0.1 -host-port P -container-ip IP -container-port 80
# so that its command line reads like a real one (its comm is `docker-proxy`). It listens on
# host-ip:host-port and relays each connection to container-ip:container-port.
import socket
import sys
import threading

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
if args.get("-proto") != "tcp":
    sys.exit("only -proto tcp")
target = (args["-container-ip"], int(args["-container-port"]))
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((args["-host-ip"], int(args["-host-port"])))
listener.listen(64)


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(client):
    try:
        upstream = socket.create_connection(target, timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    other = threading.Thread(target=pipe, args=(client, upstream), daemon=True)
    other.start()
    pipe(upstream, client)
    other.join(10)
    client.close()
    upstream.close()


while True:
    conn, _ = listener.accept()
    threading.Thread(target=relay, args=(conn,), daemon=True).start()
