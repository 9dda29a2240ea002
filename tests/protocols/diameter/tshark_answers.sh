#!/usr/bin/env bash
# tshark (Wireshark's Diameter dissector, written by nobody here) decodes every
# message kind the front-end sends — success and each error answer with its
# Failed-AVP, CEA refusals, DWR/DWA/DPR/DPA — wrapped into TCP by text2pcap,
# with the expected Result-Code and no malformed packet or warning.
#   tshark_answers.sh ANSWER_SAMPLES_BINARY
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$1" >"$work/samples.txt"
grep -v '^#' "$work/samples.txt" >"$work/hex.txt"
text2pcap -q -T 3868,40000 "$work/hex.txt" "$work/answers.pcap"
grep '^#' "$work/samples.txt" | awk '{print $3}' >"$work/expected.txt"
tshark -r "$work/answers.pcap" -d tcp.port==3868,diameter -T fields -e diameter.cmd.code -e diameter.Result-Code \
  2>/dev/null >"$work/decoded.txt"
paste <(grep '^#' "$work/samples.txt" | awk '{print $2}') "$work/expected.txt" "$work/decoded.txt"
n_exp=$(wc -l <"$work/expected.txt")
n_got=$(grep -c . "$work/decoded.txt")
[[ $n_exp -eq $n_got ]] || { echo "FAIL: $n_exp messages written, $n_got decoded"; exit 1; }
# Result-Code as decoded must be the expected one (0: a request, none expected).
paste "$work/expected.txt" "$work/decoded.txt" | awk -F'\t' '
  { rc = $3; split(rc, a, ","); if (($1 == 0 && rc != "") || ($1 != 0 && a[1] != $1)) { print "FAIL line " NR ": " $0; bad = 1 } }
  END { exit bad }'
# The 5014 and 5001 answers must carry the peer's offending AVP as received
# (RFC 6733 §7.1.5): Wireshark's notes about that AVP (a 2-byte Unsigned32,
# an unknown code) concern the peer's bytes, and are the only ones allowed.
bad=$(tshark -r "$work/answers.pcap" -d tcp.port==3868,diameter \
      -Y '_ws.malformed || (diameter && _ws.expert.severity >= "Warning")' -T fields -e frame.number \
      -e diameter.Result-Code -e _ws.expert.message 2>/dev/null |
      grep -Ev $'^[0-9]+\t5014\tBad Unsigned32 Length \\(2\\)$|^[0-9]+\t5001\tUnknown AVP 99999 ' || true)
[[ -z "$bad" ]] || { echo "$bad"; echo "FAIL: malformed packets or warnings"; exit 1; }
# Failed-AVP content decoded for the 5xxx answers.
tshark -r "$work/answers.pcap" -d tcp.port==3868,diameter -Y 'diameter.Failed-AVP' -T fields -e diameter.Result-Code \
  -e diameter.avp.code 2>/dev/null | sed 's/^/Failed-AVP: /'
echo "PASS: $n_got messages decoded, no malformed packet, no warning"
