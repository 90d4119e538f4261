#!/usr/bin/env python3
"""Writes the PDF fixtures of crates/cli/tests/e2e_sign.rs (Python standard library only).

    python3 sign-pdfs.py DIR

- sign-loan.pdf:  one A4 page of text (Helvetica), a classic cross-reference table,
                  an /Info dictionary and a file /ID; 1,219 bytes.
- sign-large.pdf: the same kind of document with a content stream of 800 lines (most
                  fall below the page's edge: only its size matters), 63,257 bytes, for
                  the tests of the size limit.

The output is byte-for-byte deterministic.
"""
import hashlib
import sys
from pathlib import Path


def escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def content_stream(lines):
    out = ["BT", "/F1 12 Tf", "14 TL", "56 780 Td"]
    for line in lines:
        out.append(f"({escape(line)}) Tj T*")
    out.append("ET")
    return ("\n".join(out) + "\n").encode("latin-1")


def pdf(title: str, lines) -> bytes:
    stream = content_stream(lines)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"endstream",
        b"<< /Title (" + escape(title).encode("latin-1") + b") "
        b"/Producer (sign-pdfs.py, Python standard library) "
        b"/CreationDate (D:20251202090000Z) >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    file_id = hashlib.md5(title.encode()).hexdigest().upper()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R "
        f"/ID [<{file_id}> <{file_id}>] >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def main():
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    loan = [
        "Loan agreement",
        "",
        "Between Nettbanken ASA (the lender) and Kari Nordmann (the borrower),",
        "made on 2 December 2025.",
        "",
        "1. The lender lends the borrower NOK 250 000.",
        "2. The loan is repaid in 60 monthly instalments.",
        "3. The nominal interest rate is 5.9 % per year.",
        "",
        "Signed electronically with segl.",
    ]
    (target / "sign-loan.pdf").write_bytes(pdf("Loan agreement", loan))
    large = [f"Line {i:05d} of the annex: the quick brown fox jumps over the lazy dog."
             for i in range(800)]
    (target / "sign-large.pdf").write_bytes(pdf("Loan agreement, annex", large))


if __name__ == "__main__":
    main()
