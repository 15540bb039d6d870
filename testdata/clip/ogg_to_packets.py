#!/usr/bin/env python3
"""Unwraps the Opus packets of an Ogg Opus file into the testkit's packet file.

Packet file: the 8 bytes b"RLOPUS01", one byte: channels, one byte: frame duration in ms,
a u16 LE packet count, then per packet a u16 LE length and the packet's bytes. The OpusHead
and OpusTags packets are not copied (RTP carries neither).

Usage: ogg_to_packets.py IN.ogg OUT.opuspkt
"""
import struct
import sys


def ogg_packets(data):
    """Yields the packets of the first logical stream of an Ogg file."""
    pos, packet, serial = 0, b"", None
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {pos}")
        if len(data) < pos + 27:
            raise ValueError("truncated page header")
        page_serial = struct.unpack_from("<I", data, pos + 14)[0]
        segments = data[pos + 26]
        table = data[pos + 27:pos + 27 + segments]
        if len(table) != segments:
            raise ValueError("truncated segment table")
        body = pos + 27 + segments
        if serial is None:
            serial = page_serial
        for lacing in table:
            if page_serial == serial:
                packet += data[body:body + lacing]
                if lacing < 255:
                    yield packet
                    packet = b""
            body += lacing
        if body > len(data):
            raise ValueError("truncated page body")
        pos = body
    if packet:
        raise ValueError("the last packet is unfinished")


def frame_us(config):
    """The frame duration of an Opus TOC configuration (RFC 6716, table 2), in microseconds."""
    if config < 12:  # SILK-only: 10, 20, 40, 60 ms
        return (10_000, 20_000, 40_000, 60_000)[config % 4]
    if config < 16:  # hybrid: 10, 20 ms
        return (10_000, 20_000)[config % 2]
    return (2_500, 5_000, 10_000, 20_000)[config % 4]  # CELT-only


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        packets = list(ogg_packets(f.read()))
    head, tags, audio = packets[0], packets[1], packets[2:]
    if not head.startswith(b"OpusHead") or not tags.startswith(b"OpusTags"):
        raise ValueError("not Ogg Opus")
    channels = head[9]
    for p in audio:
        # One 20 ms frame per packet: TOC code 0 and a 20 ms configuration (RFC 6716, 3.1).
        if not 0 < len(p) < 65536 or frame_us(p[0] >> 3) != 20_000 or p[0] & 3 != 0:
            raise ValueError(f"not a single 20 ms frame: TOC {p[0]:#x}")
    out = b"RLOPUS01" + bytes([channels, 20]) + struct.pack("<H", len(audio))
    for p in audio:
        out += struct.pack("<H", len(p)) + p
    with open(dst, "wb") as f:
        f.write(out)
    print(f"{len(audio)} packets, {channels} channel(s), {len(out)} bytes")


if __name__ == "__main__":
    main()
