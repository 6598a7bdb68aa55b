-- core.credit_notes: one row per credit note in force at T (core.refund_lines holds its latest
-- version dated <= T, per line): what the shop owes. Its amount is the sum of its money-out
-- payments on all lines, SHIPPING included, in the note's currency (reconciliation.md "Credit
-- notes against payment-provider refunds"); status_date is the date of that version, for a
-- RELEASED note the day it was released.
INSERT INTO core.credit_notes
SELECT
    $business_date,
    credit_note_number,
    min(order_reference),
    min(currency),
    min(status_code),
    bool_or(is_money_out),
    sum(amount),
    min(credit_note_date),
    max(version_date)
FROM core.refund_lines
WHERE business_date = $business_date
GROUP BY credit_note_number;
