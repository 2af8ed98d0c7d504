"""The plain PyTorch service bench/serve.ts compares `moco serve` with: the standard library's http.server, one
request at a time, torchvision's evaluation preprocessing and the same ResNet weights (a torchvision-layout .pth
written by moco-ts). POST /v1/embed with a raw image body answers {"dim", "vectors"} like moco serve.

  /usr/bin/python3 bench/py/serve_peer.py MODEL.pth --size 224 [--cifar] [--threads N]

Prints "READY <port>" once listening on 127.0.0.1 (an ephemeral port).
"""
import argparse
import io
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--cifar", action="store_true")
ap.add_argument("--threads", type=int, default=0)
args = ap.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

net = torchvision.models.resnet18()
if args.cifar:
    net.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = torch.nn.Identity()
net.fc = torch.nn.Identity()
state = torch.load(args.model, map_location="cpu")
missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
if missing or unexpected:
    sys.exit(f"weights do not fit resnet18: missing {missing}, unexpected {unexpected}")
net.eval()

if args.cifar:
    pre = transforms.Compose([transforms.Resize((args.size, args.size)), transforms.ToTensor(),
                              transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.201))])
else:
    pre = transforms.Compose([transforms.Resize(round(args.size * 256 / 224)), transforms.CenterCrop(args.size), transforms.ToTensor(),
                              transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        # One request a connection: a serial server that held a client's keep-alive connection would starve the others
        # (and Node's fetch waited ~4 s before reusing one here).
        self.send_header("connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        data = self.rfile.read(n)
        if self.path != "/v1/embed":
            return self.reply(404, {"error": "not_found"})
        try:
            img = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:  # noqa: BLE001 - any decode failure is the client's
            return self.reply(422, {"error": "undecodable", "message": str(e)})
        with torch.no_grad():
            v = F.normalize(net(pre(img).unsqueeze(0)), dim=1)
        self.reply(200, {"dim": v.shape[1], "vectors": v.tolist()})


class Server(HTTPServer):
    request_queue_size = 128  # 32 concurrent clients must not overflow the listen backlog


server = Server(("127.0.0.1", 0), Handler)
print(f"READY {server.server_address[1]}", flush=True)
server.serve_forever()
