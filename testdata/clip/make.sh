#!/usr/bin/env bash
# Regenerates the testkit clip (see README.md): VP8 in IVF, H.264 in Annex-B and Opus as a
# packet file. Needs ffmpeg with libvpx, libx264 and libopus, and python3. Run from anywhere:
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

# The same 5 s as H.264 constrained baseline (what WebRTC's H.264 sends: packetization mode
# 1, no B-frames), one IDR every 30 frames exactly, one slice, single-threaded so the output is
# bit-exact; an access unit delimiter before each frame (the testkit splits frames at them) and
# SPS/PPS before each IDR (a keyframe decodes on its own, as a viewer joining needs).
ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x180:rate=30:duration=5" \
    -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -level 3.0 \
    -pix_fmt yuv420p -b:v 150k -maxrate 180k -bufsize 180k \
    -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 -threads 1 \
    -x264-params "aud=1:repeat-headers=1:sliced-threads=0:slices=1" \
    -an -bitexact -f h264 video.h264

# 5 s of a 440 Hz tone, 48 kHz mono, Opus in 20 ms frames (250 packets), then unwrapped
# from Ogg into the length-prefixed packet file the testkit reads (format in README.md).
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=5" \
    -c:a libopus -b:a 32k -frame_duration 20 -application audio -vbr on -ac 1 \
    -bitexact -f ogg "$tmp/audio.ogg"
python3 ogg_to_packets.py "$tmp/audio.ogg" audio.opuspkt

# Both must decode without a word from ffmpeg.
test -z "$(ffmpeg -v error -i video.ivf -f null - 2>&1)"
test -z "$(ffmpeg -v error -i video.h264 -f null - 2>&1)"
test -z "$(ffmpeg -v error -i "$tmp/audio.ogg" -f null - 2>&1)"
ls -l video.ivf video.h264 audio.opuspkt
