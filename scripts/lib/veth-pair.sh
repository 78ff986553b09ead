# Sourced by the live benchmarks: two network namespaces joined by a veth pair, IPv6 off
# (no router solicitations or MLD reports: the only frames are the ones sent), links up.
# `veth_pair PREFIX` sets cap_ns, snd_ns (namespaces) and cap_if, snd_if (their ends);
# `veth_pair_delete` deletes both namespaces and with them the pair.

veth_pair() {
  local prefix=$1 id=$$ pair ns link
  cap_ns=${prefix}cap$id snd_ns=${prefix}snd$id cap_if=${prefix}c$id snd_if=${prefix}s$id
  ip netns add "$cap_ns"
  ip netns add "$snd_ns"
  ip link add "$cap_if" netns "$cap_ns" type veth peer name "$snd_if" netns "$snd_ns"
  for pair in "$cap_ns:$cap_if" "$snd_ns:$snd_if"; do
    ns=${pair%%:*} link=${pair#*:}
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$link.disable_ipv6=1"
    ip -n "$ns" link set "$link" up
    ip -n "$ns" link set lo up
  done
}

veth_pair_delete() {
  [[ -n ${cap_ns:-} ]] && ip netns del "$cap_ns" 2>/dev/null
  [[ -n ${snd_ns:-} ]] && ip netns del "$snd_ns" 2>/dev/null
  return 0
}
