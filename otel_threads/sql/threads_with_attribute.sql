-- threads_with_attribute: one row per thread some span of which carries attribute
-- attr_key with value attr_value (as text: a number or boolean as JSON writes it; span
-- or resource attribute). derive_thread_attributes.sql says which values are kept
-- (scalars and array elements of at most 256 characters). The threads filter
-- `attributes` reads it: FROM threads_with_attribute('tenant', 'acme').
-- macro parameters: attr_key, attr_value
SELECT DISTINCT thread_id
FROM thread_attributes
WHERE list_contains(attribute_hashes, md5_number_lower(attr_key || chr(31) || attr_value))
