"""A plain one-font invoice PDF written by hand (no PDF library dependency): text lines, A4, paginated."""

from __future__ import annotations

from billing.models import Invoice

_LINES_PER_PAGE = 60


def _escape(text: str) -> str:
    # The base-14 fonts speak Latin-1 (WinAnsi); anything else is replaced rather than breaking the file.
    text = text.encode("latin-1", "replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def invoice_text_lines(invoice: Invoice) -> list[str]:
    lines = [f"Invoice {invoice.number}", "",
             f"Period: {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d} (exclusive)",
             f"Issued: {invoice.issued_at:%Y-%m-%d}   Status: {invoice.status}", "",
             f"Customer: {invoice.legal_name or invoice.organization_id}"]
    lines += [f"  {part}" for part in invoice.address.splitlines() if part.strip()]
    lines += [f"  Country: {invoice.country}"]
    if invoice.vat_number:
        lines.append(f"  VAT number: {invoice.vat_number}")
    lines += ["", f"{'Description':<70} {'Qty':>10} {'Unit':>5} {'Price':>10} {'Amount':>12}"]
    for line in invoice.lines.all():
        lines.append(f"{line.description[:70]:<70} {line.quantity:>10} {line.unit:>5} {line.unit_price:>10} "
                     f"{line.amount:>12}")
    lines += ["", f"{'Subtotal':>98} {invoice.subtotal:>12} {invoice.currency}",
              f"{'VAT ' + str(invoice.vat_rate.normalize()) + '%':>98} {invoice.vat_amount:>12} {invoice.currency}",
              f"{'Total':>98} {invoice.total:>12} {invoice.currency}"]
    if invoice.vat_note:
        lines += ["", invoice.vat_note]
    return lines


def invoice_pdf(invoice: Invoice) -> bytes:
    text = invoice_text_lines(invoice)
    pages = [text[i:i + _LINES_PER_PAGE] for i in range(0, len(text), _LINES_PER_PAGE)] or [[]]
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: page tree (filled in below)
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")  # 3
    page_ids = []
    for page in pages:
        stream = "BT /F1 7 Tf 9 TL 36 800 Td " + " ".join(f"({_escape(t)}) '" for t in page) + " ET"
        body = stream.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
        content_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                       b"/Contents %d 0 R >>" % content_id)
        page_ids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids)
                  + b"] /Count %d >>" % len(page_ids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
