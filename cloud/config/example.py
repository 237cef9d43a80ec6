"""The commented example cloud.toml that `mchub cloud init` writes (every section, every key)."""

EXAMPLE = """\
# mchub cloud configuration (see `mchub cloud serve --help`)
[server]
host = "127.0.0.1"
port = 8443
workers = 1              # >1 needs PostgreSQL
max_batch_bytes = 33554432
max_inflight = 32        # concurrent ingests per worker; beyond max_queue waiting -> 503
max_queue = 256
retry_after_s = 5

[database]
url = "sqlite:///cloud.db"   # or postgresql://mchub@db:5432/mchub
pool_size = 10

[keys]
dir = "keys"             # created by `mchub cloud init`

[admin]
token_file = "admin.token"  # bearer token for /admin/v1 (fleet simulator, provisioning); "" = disabled

[mqtt]
enabled = false
host = "127.0.0.1"
port = 1883

[provisioning]
ca_dir = ""              # fleet CA from `mchub provision ca init`; "" = hub enrollment disabled
passphrase_file = ""     # first line: the CA passphrase (mode 0600)
mqtt_url = "mqtt://127.0.0.1:1883"   # the broker enrolled hubs are told to use (only when [mqtt] enabled)
hub_cert_days = 30       # hub certificate lifetime; hubs rotate in the last third
rotation_overlap_hours = 24          # the old key keeps verifying this long after a rotation
mqtt_password_file = ""  # rewrite this Mosquitto password_file after enrollments and revocations
mqtt_reload_command = [] # then run this, e.g. ["systemctl", "reload", "mosquitto"]

[outbox]
max_attempts = 10
base_delay_s = 5.0
max_delay_s = 3600.0

[web]
idle_timeout_s = 900     # dashboard/admin sessions end after this long without a request
secure_cookie = true     # false only for plain-HTTP testing; production runs behind HTTPS
max_failures = 5         # wrong logins before a user name (or client address) is locked
lock_s = 900

[logging]
level = "INFO"
json = true

[mllp]                   # HL7 v2 from the HIS/LIS (docs/hl7.md)
enabled = false
host = "127.0.0.1"       # the LAN address the HIS/LIS connects to; loopback by default
port = 2575
tls_cert = ""            # PEM certificate + key for MLLP over TLS; "" = plain TCP
tls_key = ""
max_message_bytes = 1048576
idle_timeout_s = 900     # close a connection that completed no message for this long
# who may send (docs/hl7.md, "Who may send"): anything else is refused, audited and closed
allowed_senders = ["127.0.0.1", "::1"]   # HIS/LIS addresses or networks, e.g. "10.1.2.3", "10.1.5.0/24"
allowed_apps = []        # optional MSH-3 or "MSH-3|MSH-4" values, e.g. ["LIS", "HIS|HOSP"]; [] = any
allow_any = false        # true: any address may connect (say so only behind a firewall that restricts it)
max_connections = 256
max_connections_per_source = 32
frame_timeout_s = 60     # a started frame must be complete within this, however slowly it drips
# local lab codes -> LOINC, one table per coding system (OBX-3.3):
#   [mllp.code_map.L]
#   HPV16 = "59263-4"    (inline form: code_map = { L = { HPV16 = "59263-4" } })

[his]                    # vitals ORU^R01 to the HIS over MLLP (docs/hl7.md)
enabled = false
host = "127.0.0.1"
port = 2576
tls_ca = ""              # PEM CA of the HIS for MLLP over TLS; "" = plain TCP
ack_timeout_s = 30
attempts = 3             # sends per delivery try (same MSH-10), then the outbox backs off
sending_facility = ""
receiving_app = "HIS"
receiving_facility = ""
mrn_authority = ""       # PID-3.4 of HIS MRNs (learned from ADT); "" = any

[dicom]                  # DICOM intake: STOW-RS on the HTTP port, C-STORE SCP (docs/dicom.md)
enabled = false
object_dir = "dicom"
scp_enabled = true
scp_host = "0.0.0.0"
scp_port = 11112
ae_title = "MCHUB"
allowed_calling_aets = {}   # PACS AE title -> addresses it sends from (required when scp_enabled),
                            # e.g. { PACS1 = ["10.1.2.3", "10.1.9.0/24"] }; STOW-RS senders need a
                            # credential: mchub cloud dicom-sender add PACS1
max_body_mb = 512
# national_id_issuers = ["NNCHN", "身份证"]
[mch]                    # maternal-and-child-health cases and uploads (docs/mch.md)
enabled = false          # assemble cases, follow-ups and uploads inside the cloud
platform_url = ""        # e.g. "https://mch.example.gov.cn"; "" = keep records queued, upload nothing
app_key = ""
secret_file = "mch.secret"   # the platform's app secret (one line), mode 0600
algorithm = "HMAC-SHA256"    # or "HMAC-SM3"
profile = ""             # platform field mapping; "" = cloud/mch/profiles/reference.toml
rate_per_s = 5.0         # uploads per second at most
timeout_s = 10.0
lease_s = 60.0           # a claimed upload is retried after this if its worker died
assemble_interval_s = 10.0
default_site = "default" # site of a case with no visit at a known hub

[audit]
retention_days = 400     # at least 183 (six months, Cybersecurity Law art. 21); older entries are pruned
seal_interval_s = 1.0    # how soon a new entry is linked into the hash chain
prune_interval_s = 3600.0

[fleet]
presence_window_s = 180  # online while a batch, telemetry or MQTT status came within this (> hub telemetry_interval_s)
training_rig = false     # true only where the HIS and MCH platform are test systems: simulated readings may go there

[http]                   # the doors of the HTTP port (docs/deployment.md)
forwarded_allow_ips = "127.0.0.1"   # proxies trusted for X-Forwarded-For, e.g. "127.0.0.1, 10.0.0.5"
metrics_token_file = ""  # bearer token for /metrics; "" = /metrics answers loopback clients only
max_body_bytes = 1048576 # body cap of routes without their own (batches, enrolment, STOW-RS have theirs)
max_connections = 1000   # open connections per worker
max_connections_per_ip = 64          # from one client address (trusted proxies exempt)
header_timeout_s = 10.0  # request headers must arrive within this (a dripping client cannot extend it)
request_timeout_s = 300.0            # the whole request, headers and body, from its first byte
refusal_window_s = 60.0  # refusals audited as one row per source, route and reason per window
"""
