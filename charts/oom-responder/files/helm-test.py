"""`helm test`: the Service answers /readyz, and one webhook the service ignores is accepted with the token.

Runs in the service's own image (Python, no other tools). The alert is one no playbook answers (its name maps
to no alert kind), so nothing is mitigated in any mode. Exit 0 only when both checks pass.
"""

import json
import os
import sys
import urllib.error
import urllib.request

base = os.environ["OOM_RESPONDER_URL"].rstrip("/")
token_file = os.environ.get("OOM_RESPONDER_TOKEN_FILE", "")
try:
    with urllib.request.urlopen(base + "/readyz", timeout=10) as response:
        print("readyz:", response.status, response.read().decode()[:500])
except urllib.error.HTTPError as e:
    print("readyz: not ready:", e.code, e.read().decode()[:500])
    sys.exit(1)
headers = {"Content-Type": "application/json"}
if token_file:
    with open(token_file, encoding="utf-8") as f:
        headers["Authorization"] = "Bearer " + f.read().strip()
alert = {
    "status": "firing",
    "labels": {"alertname": "OomResponderHelmTest", "namespace": os.environ.get("POD_NAMESPACE", "default")},
    "annotations": {"summary": "helm test of the oom-responder release; ignored by the service"},
    "startsAt": "2024-01-01T00:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "",
    "fingerprint": "0000000000000000",
}
payload = {
    "version": "4",
    "groupKey": '{}:{alertname="OomResponderHelmTest"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "helm-test",
    "groupLabels": {"alertname": "OomResponderHelmTest"},
    "commonLabels": alert["labels"],
    "commonAnnotations": {},
    "externalURL": "",
    "alerts": [alert],
}
request = urllib.request.Request(
    base + "/webhook", data=json.dumps(payload).encode(), headers=headers, method="POST"
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
        status = response.status
except urllib.error.HTTPError as e:
    print("webhook: refused:", e.code, e.read().decode()[:500])
    sys.exit(1)
print("webhook:", status, answer)
if status != 202 or answer.get("ignored") != 1:
    print("webhook: expected 202 with the alert ignored")
    sys.exit(1)
print("ok")
