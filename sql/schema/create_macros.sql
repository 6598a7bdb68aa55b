-- Exact decimal arithmetic for the rules. DuckDB divides DECIMALs in DOUBLE; money must not be
-- floating point, so divisions go through HUGEINT integer division with half-up rounding.
-- (Positive denominators only; a zero denominator gives NULL.)

-- n / d rounded half-up to 8 decimal places; n has at most 12 decimals (amounts x rates), d at
-- most 8 (quantities, currency rates). With N = n * 10^12 and D = d * 10^8 (integers), the result
-- in units of 10^-8 is N * 10^4 / D.
CREATE OR REPLACE MACRO main.div_half_up_8(n, d) AS
    CAST(CAST((CAST(n * 1000000000000 AS HUGEINT) * 20000 + CAST(d * 100000000 AS HUGEINT))
              // (2 * CAST(nullif(d * 100000000, 0) AS HUGEINT)) AS DECIMAL(38,0))
         * CAST(0.00000001 AS DECIMAL(10,8)) AS DECIMAL(24,8));

-- a / b rounded half-up to a whole number (a and b with at most 10 decimals): refunded units.
CREATE OR REPLACE MACRO main.div_round_units(a, b) AS
    CAST((CAST(a * 10000000000 AS HUGEINT) * 2 + CAST(b * 10000000000 AS HUGEINT))
         // (2 * CAST(nullif(b * 10000000000, 0) AS HUGEINT)) AS INTEGER);

-- Text for the explanations of sql/rules/*.sql: money exact to the cent with its currency
-- ("240.00 EUR"; half-up, never through a DOUBLE) and a count of units or days ("1 unit", "2 units", "1 day").
CREATE OR REPLACE MACRO main.money_text(amount, currency) AS
    coalesce(CAST(CAST(round(amount, 2) AS DECIMAL(18,2)) AS VARCHAR), '?') || coalesce(' ' || currency, '');
CREATE OR REPLACE MACRO main.units_text(n) AS
    coalesce(CAST(n AS VARCHAR), '?') || CASE WHEN n = 1 THEN ' unit' ELSE ' units' END;
CREATE OR REPLACE MACRO main.days_text(n) AS
    coalesce(CAST(n AS VARCHAR), '?') || CASE WHEN n = 1 THEN ' day' ELSE ' days' END;
-- A list of ids for a sentence ("CN-19, CN-20"), or the given word when there is none.
CREATE OR REPLACE MACRO main.ids_text(ids, none_word) AS
    coalesce(nullif(replace(ids, ',', ', '), ''), none_word);
