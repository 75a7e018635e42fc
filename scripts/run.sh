#!/usr/bin/env bash
# Serves the whole platform locally: migrates, bootstraps a demo Workspace (once), starts
# a small receiver for outbound messages, prints how to use it, then runs `ism serve all`.
set -euo pipefail
cd "$(dirname "$0")/.."
ISM=target/debug/ism
export ISM_TELEMETRY__LOG_FORMAT="${ISM_TELEMETRY__LOG_FORMAT:-pretty}"
# The demo's webhook receiver listens on loopback, which user-supplied URLs may not reach
# by default.
export ISM_EGRESS__ALLOW="${ISM_EGRESS__ALLOW:-[\"127.0.0.1/32\"]}"
# No load balancer routes by readiness here: Ctrl-C need not wait for one to notice.
export ISM_SHUTDOWN__PROPAGATION_SECONDS="${ISM_SHUTDOWN__PROPAGATION_SECONDS:-0}"

"$ISM" migrate all >/dev/null
"$ISM" admin demo --file .ism/demo.env >/dev/null
# shellcheck disable=SC1091
source .ism/demo.env
# A ready access token acting as the demo Workspace's owner User (valid 5 minutes; run
# `ism admin user-token` again, or exchange the API key with `ism token`, for a new one).
TOKEN=$("$ISM" admin user-token --user "$ISM_DEMO_USER_ID")

python3 scripts/demo-receiver.py 8099 > .ism/outbound.log 2>&1 &
receiver=$!
trap 'kill $receiver 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

cat <<USAGE

IS-Messenger is starting: gRPC on 127.0.0.1:50051-50057, webhooks on http://127.0.0.1:8080.
Demo credentials are in .ism/demo.env (load them with: source .ism/demo.env).

  # 1. A customer writes to the demo custom channel (a signed webhook):
  $ISM webhook --channel $ISM_DEMO_CHANNEL_ID --secret $ISM_DEMO_WEBHOOK_SECRET \\
      --from customer-1 --name "Ada Lovelace" --text "Hello!"

  # 2. Read it back over gRPC (any reflection client; buf curl shown). A ready token
  #    for the demo owner (valid 5 minutes; renew with: $ISM token --api-key \$ISM_API_KEY):
  TOKEN=$TOKEN
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" \\
      http://127.0.0.1:50054/ism.conversations.v1.ConversationService/ListConversations

  # 3. Reply (use a conversation id from step 2); it is POSTed, signed, to the demo
  #    receiver, which logs it in .ism/outbound.log:
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" \\
      -d '{"conversation_id":"<id>","content":{"text":{"body":"Hi Ada!"}}}' \\
      http://127.0.0.1:50054/ism.conversations.v1.ConversationService/SendMessage

  # 4. Broadcast to every Contact of the channel, personalised, then start it; each
  #    recipient is POSTed once (watch .ism/outbound.log) and the stats count them:
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" \\
      -d '{"definition":{"name":"Welcome","channel_id":"$ISM_DEMO_CHANNEL_ID",
           "audience":{"filter":{}},"content":{"text":{"body":"Hi {{contact.first_name}}!"}}}}' \\
      http://127.0.0.1:50055/ism.broadcasts.v1.BroadcastService/CreateBroadcast
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" -d '{"id":"<broadcast id>"}' \\
      http://127.0.0.1:50055/ism.broadcasts.v1.BroadcastService/StartBroadcast
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" -d '{"id":"<broadcast id>"}' \\
      http://127.0.0.1:50055/ism.broadcasts.v1.BroadcastService/GetBroadcast

  # 5. Follow events with a webhook: every new message is POSTed, signed per the
  #    Standard Webhooks spec with the secret the call returns, to the demo receiver
  #    (the demo allows loopback URLs; production refuses them, see egress.allow):
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" \\
      -d '{"definition":{"url":"http://127.0.0.1:8099/events",
           "event_types":["conversations.message.created"]}}' \\
      http://127.0.0.1:50057/ism.integrations.v1.IntegrationService/CreateWebhookEndpoint

  # 6. Automate: a workflow that greets every new conversation, waits a minute and asks
  #    again; publish it (use the id from create), then open a conversation as in step 1
  #    with another --from, and watch .ism/outbound.log:
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" \\
      -d '{"definition":{"name":"Welcome","trigger":{"conversation_opened":{}},"steps":[
           {"id":"hello","next":"pause","send_message":{"content":{"text":{"body":"Welcome!"}}}},
           {"id":"pause","next":"again","wait":{"seconds":60}},
           {"id":"again","send_message":{"content":{"text":{"body":"Anything else?"}}}}]}}' \\
      http://127.0.0.1:50056/ism.workflows.v1.WorkflowService/CreateWorkflow
  npx --yes @bufbuild/buf@1.75.0 curl --protocol grpc --http2-prior-knowledge \\
      -H "authorization: Bearer \$TOKEN" -d '{"workflow_id":"<workflow id>"}' \\
      http://127.0.0.1:50056/ism.workflows.v1.WorkflowService/PublishWorkflow

  # 7. Let another system start a workflow: a workflow with an incoming-webhook trigger
  #    (created and published as in step 6) answers with its webhook_path and
  #    webhook_secret; post a body naming a Contact (here by id), signed per the
  #    Standard Webhooks spec:
  #      "trigger":{"incoming_webhook":{"contact_pointer":"/contact","contact_key":"CONTACT_KEY_ID",
  #                 "save":{"order":"/order"}}}
  BODY='{"contact":"<contact id>","order":"A-1"}' SECRET='<webhook_secret>' python3 -c '
import base64, hashlib, hmac, os, time, urllib.request
body, secret, ts = os.environ["BODY"], os.environ["SECRET"], str(int(time.time()))
key = base64.b64decode(secret.removeprefix("whsec_"))
sig = base64.b64encode(hmac.new(key, f"msg_1.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request("http://127.0.0.1:8080<webhook_path>", body.encode(), {
    "content-type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": ts,
    "webhook-signature": "v1," + sig})
print(urllib.request.urlopen(request).read().decode())'

Stop with Ctrl-C (in-flight work drains first).

USAGE
"$ISM" serve all
