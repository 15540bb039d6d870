#!/usr/bin/env bash
# Regenerates the testkit clip (see README.md): VP8 in IVF and Opus as a packet file.
# Needs ffmpeg with libvpx and libopus, and python3. Run from anywhere:
#   testdata/clip/make.sh
set -euo pipefail
cd "$(dirname "$0")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 5 s of a moving test pattern, 320x180 at 30 fps; libvpx realtime, one keyframe every 30
# frames exactly, no lag and no alt-ref (so every IVF frame is one shown frame, as WebRTC
# sends them), error resilient like a real-time sender.
ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x180:rate=30:duration=5" \
    -c:v libvpx -deadline realtime -cpu-used 8 -b:v 250k -maxrate 300k -bufsize 300k \
    -g 30 -keyint_min 30 -force_key_frames "expr:eq(mod(n,30),0)" \
    -lag-in-frames 0 -auto-alt-ref 0 -error-resilient 1 \
    -pix_fmt yuv420p -an -bitexact -f ivf video.ivf

# 5 s of a 440 Hz tone, 48 kHz mono, Opus in 20 ms frames (250 packets), then unwrapped
# from Ogg into the length-prefixed packet file the testkit reads (format in README.md).
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=5" \
    -c:a libopus -b:a 32k -frame_duration 20 -application audio -vbr on -ac 1 \
    -bitexact -f ogg "$tmp/audio.ogg"
python3 ogg_to_packets.py "$tmp/audio.ogg" audio.opuspkt

# Both must decode without a word from ffmpeg.
test -z "$(ffmpeg -v error -i video.ivf -f null - 2>&1)"
test -z "$(ffmpeg -v error -i "$tmp/audio.ogg" -f null - 2>&1)"
ls -l video.ivf audio.opuspkt
