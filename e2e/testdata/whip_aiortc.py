#!/usr/bin/env python3
"""An independent WHIP client (RFC 9725) for e2e/whip_netns_test.go: aiortc
publishes a real Opus tone and VP8 video to the WHIP endpoint given as its
argument (a bearer token in WHIP_TOKEN, if any). It prints "CONNECTED
<session URL>" once its PeerConnection connects, keeps publishing until its
stdin closes, then DELETEs the session and prints "DELETED <status>"."""

import asyncio
import fractions
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy
from av import AudioFrame
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack


class Tone(AudioStreamTrack):
    """A 440 Hz sine, 20 ms frames at 48 kHz."""

    def __init__(self):
        super().__init__()
        self.n = 0

    async def recv(self):
        await asyncio.sleep(0.02)
        t = (numpy.arange(960) + self.n) / 48000
        self.n += 960
        samples = (numpy.sin(2 * math.pi * 440 * t) * 8000).astype(numpy.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.n
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


def request(method, url, body=None, content_type=None):
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    token = os.environ.get("WHIP_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    return urllib.request.urlopen(req, timeout=15)


async def main(endpoint):
    # No STUN server: the test network has only the server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected":
            connected.set()

    pc.addTrack(Tone())
    pc.addTrack(VideoStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers first
    loop = asyncio.get_running_loop()
    try:
        resp = await loop.run_in_executor(
            None, lambda: request("POST", endpoint, pc.localDescription.sdp.encode(), "application/sdp"))
    except urllib.error.HTTPError as e:
        print("POST", e.code, e.read().decode().strip(), flush=True)
        return 1
    location = urllib.parse.urljoin(endpoint, resp.headers["Location"])
    answer = resp.read().decode()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.wait_for(connected.wait(), 20)
    print("CONNECTED", location, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes it
    status = await loop.run_in_executor(None, lambda: request("DELETE", location).status)
    print("DELETED", status, flush=True)
    await pc.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
