#!/usr/bin/env python3
"""Lists the NAL unit types of an H.264 or H.265 Annex B byte stream.

Used to check what a test stream really contains, e.g. whether the key frames of
an H.265 stream are IDR or CRA pictures:

    ffmpeg -rtsp_transport tcp -i rtsp://127.0.0.1:PORT/cra265 -t 5 -c copy -f hevc cra.h265
    tests/support/nal_types.py --codec h265 cra.h265

prints one line per NAL unit type with its count, then the sequence of random
access (key) pictures in stream order, e.g. `IDR_W_RADL CRA CRA CRA`.
Pure standard library, any python3.
"""

import argparse
import collections
import sys

H265_NAMES = {
    0: "TRAIL_N", 1: "TRAIL_R", 2: "TSA_N", 3: "TSA_R", 4: "STSA_N", 5: "STSA_R",
    6: "RADL_N", 7: "RADL_R", 8: "RASL_N", 9: "RASL_R",
    16: "BLA_W_LP", 17: "BLA_W_RADL", 18: "BLA_N_LP", 19: "IDR_W_RADL", 20: "IDR_N_LP",
    21: "CRA", 32: "VPS", 33: "SPS", 34: "PPS", 35: "AUD", 36: "EOS", 37: "EOB",
    38: "FD", 39: "PREFIX_SEI", 40: "SUFFIX_SEI",
}
H265_KEY = set(range(16, 22))  # IRAP pictures: BLA, IDR, CRA

H264_NAMES = {
    1: "NON_IDR", 2: "PART_A", 3: "PART_B", 4: "PART_C", 5: "IDR", 6: "SEI", 7: "SPS",
    8: "PPS", 9: "AUD", 10: "END_SEQ", 11: "END_STREAM", 12: "FILLER",
}
H264_KEY = {5}


def nal_units(data):
    """Yields the offset of every NAL unit header (just after its start code)."""
    i = 0
    n = len(data)
    while True:
        i = data.find(b"\x00\x00\x01", i)
        if i < 0 or i + 3 >= n:
            return
        yield i + 3
        i += 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codec", choices=("h264", "h265"), required=True)
    parser.add_argument("file", help="Annex B elementary stream (ffmpeg -f h264 / -f hevc)")
    args = parser.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    counts = collections.Counter()
    keys = []
    for start in nal_units(data):
        if args.codec == "h265":
            nal_type = (data[start] >> 1) & 0x3F
            name = H265_NAMES.get(nal_type, f"type{nal_type}")
            # Only the first slice segment of a picture starts a new picture.
            first_slice = start + 2 < len(data) and data[start + 2] & 0x80
            if nal_type in H265_KEY and first_slice:
                keys.append(name)
            if nal_type < 32 and not first_slice:
                continue
        else:
            nal_type = data[start] & 0x1F
            name = H264_NAMES.get(nal_type, f"type{nal_type}")
            # first_mb_in_slice == 0 (ue(v) "1") marks the first slice of a picture.
            first_slice = start + 1 < len(data) and data[start + 1] & 0x80
            if nal_type in H264_KEY and first_slice:
                keys.append(name)
            if nal_type in (1, 5) and not first_slice:
                continue
        counts[name] += 1
    for name, count in sorted(counts.items()):
        print(f"{name} {count}")
    print("key pictures:", " ".join(keys) if keys else "(none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
