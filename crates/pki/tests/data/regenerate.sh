#!/usr/bin/env bash
# Regenerates the PDF fixtures of crates/pki/tests/pades.rs with producers other than
# segl (see README.md). Needs: python3 with fpdf2 2.8.9 and reportlab 5.1.0 (any venv:
# set PYTHON), qpdf (Debian), openssl, and pyHanko from tests/.venv-pki.
#
#   PYTHON=/path/to/venv/bin/python bash crates/pki/tests/data/regenerate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON="${PYTHON:-python3}"
PYHANKO="${PYHANKO:-../../../../tests/.venv-pki/bin/pyhanko}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. fpdf2: two pages, a classic cross-reference table.
"$PYTHON" - <<'PY'
from datetime import datetime, timezone
from fpdf import FPDF
pdf = FPDF()
pdf.set_creation_date(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
pdf.set_title("segl PAdES fixture")
pdf.set_font("helvetica", size=14)
for n in (1, 2):
    pdf.add_page()
    pdf.cell(text=f"A contract to be signed, page {n} of 2.")
pdf.output("fpdf2-classic.pdf")
PY

# 2. qpdf: the same document rewritten with object streams and a cross-reference stream
#    (PDF 1.5): the page and catalog dictionaries are inside compressed object streams.
qpdf --object-streams=generate --deterministic-id fpdf2-classic.pdf qpdf-xref-stream.pdf

# 3. reportlab: a page with an AcroForm text field (a form to extend, not replace).
"$PYTHON" - <<'PY'
from reportlab.pdfgen import canvas
c = canvas.Canvas("reportlab-form.pdf", invariant=1)
c.drawString(72, 760, "Name:")
c.acroForm.textfield(name="name", x=120, y=750, width=200, height=20, value="Kari")
c.showPage()
c.save()
PY

# 4. qpdf: fixture 1 encrypted (AES-256, empty user password).
qpdf --encrypt "" owner-secret 256 -- fpdf2-classic.pdf qpdf-encrypted.pdf
#    And with a user password.
qpdf --encrypt user-secret owner-secret 256 -- fpdf2-classic.pdf qpdf-encrypted-password.pdf

# 5. pyHanko: fixture 2 signed (PAdES B-B) by a throwaway P-256 hierarchy made here
#    with openssl; only the root certificate is kept, as pyhanko-root.pem.
cat >"$work/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
(
    cd "$work"
    for n in root ca leaf; do
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $n.key 2>/dev/null
    done
    openssl req -x509 -new -config openssl.cnf -extensions root -key root.key \
        -subj "/O=pyHanko fixture/CN=fixture root" -days 36500 -set_serial 1 -out root.pem
    for pair in ca:root:2 leaf:ca:3; do
        IFS=: read -r n issuer serial <<<"$pair"
        openssl req -new -config openssl.cnf -key $n.key -subj "/O=pyHanko fixture/CN=fixture $n" -out $n.csr
        openssl x509 -req -in $n.csr -CA $issuer.pem -CAkey $issuer.key -set_serial $serial \
            -days 36500 -sha256 -extfile openssl.cnf -extensions $n -out $n.pem 2>/dev/null
    done
)
"$PYHANKO" sign addsig --field Signature1 --name "pyHanko fixture signer" --use-pades \
    pemder --key "$work/leaf.key" --cert "$work/leaf.pem" --chain "$work/ca.pem" --no-pass \
    qpdf-xref-stream.pdf pyhanko-signed.pdf
cp "$work/root.pem" pyhanko-root.pem
ls -l ./*.pdf ./*.pem
