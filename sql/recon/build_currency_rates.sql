-- recon.currency_rates of the business date: each currency's latest order rate as of T (the
-- order lines of the date), the rate its amounts at risk are shown in the store currency at.
INSERT INTO recon.currency_rates (business_date, currency, rate)
SELECT $d, currency, arg_max(currency_value, order_date)
FROM core.order_lines
WHERE business_date = $d AND currency IS NOT NULL
GROUP BY currency;
