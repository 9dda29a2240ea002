#!/usr/bin/env python3
"""Throwaway TLS material for the https tests, generated at test time with
the openssl command line (nothing private is committed).

make_certs(dir) writes into `dir` and returns a dict of paths:

  ca            the test CA's certificate (what a client trusts via ca_file)
  good          server certificate for localhost, 127.0.0.1 and ::1, valid now
  wrong_host    server certificate for wrong-host.invalid only, valid now
  expired       server certificate for localhost and 127.0.0.1, expired in 2020
  client        client certificate (CN imeilock test client), valid now
  <name>_key    the private key of each of the above
  other_ca      a second CA nobody trusts (for the "unknown CA" case)

The expired certificate is issued with `openssl ca -startdate/-enddate` in
the past (`openssl x509 -days` cannot go negative).
"""

import os
import subprocess
import sys

CA_CONFIG = """
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
"""


def run(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, name, cn):
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.pem", "-days", "3", "-subj", f"/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def issue(d, name, cn, extensions, dates):
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={cn}")
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("basicConstraints=CA:FALSE\n" + extensions + "\n")
    run("ca", "-batch", "-notext", "-config", f"{d}/ca.cnf", "-cert", f"{d}/ca.pem",
        "-keyfile", f"{d}/ca.key", "-in", f"{d}/{name}.csr", "-out", f"{d}/{name}.pem",
        "-extfile", f"{d}/{name}.ext", *dates)


def make_certs(d):
    d = os.path.abspath(d)
    os.makedirs(f"{d}/issued", exist_ok=True)
    with open(f"{d}/ca.cnf", "w") as f:
        f.write(CA_CONFIG.format(dir=d))
    open(f"{d}/index.txt", "w").close()
    with open(f"{d}/serial", "w") as f:
        f.write("1000\n")
    make_ca(d, "ca", "imeilock test CA")
    make_ca(d, "other_ca", "imeilock untrusted CA")
    server = "extendedKeyUsage=serverAuth\nsubjectAltName="
    now = ["-days", "2"]
    issue(d, "good", "localhost", server + "DNS:localhost,IP:127.0.0.1,IP:::1", now)
    issue(d, "wrong_host", "wrong-host.invalid", server + "DNS:wrong-host.invalid", now)
    issue(d, "expired", "localhost", server + "DNS:localhost,IP:127.0.0.1,IP:::1",
          ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"])
    issue(d, "client", "imeilock test client", "extendedKeyUsage=clientAuth", now)
    out = {}
    for name in ("ca", "other_ca", "good", "wrong_host", "expired", "client"):
        out[name] = f"{d}/{name}.pem"
        out[name + "_key"] = f"{d}/{name}.key"
    return out


if __name__ == "__main__":
    for k, v in make_certs(sys.argv[1]).items():
        print(k, v)
