"""Ports for the local stand-ins: picked by the OS, never the same one twice in one call
(two Dovecot listeners on one port made it refuse its configuration)."""

from emulation.processes import free_ports, port_in_use


def test_ports_picked_together_are_all_different_and_free():
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not any(port_in_use(port) for port in ports)
