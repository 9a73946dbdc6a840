-- GenAI calls whose model has no price (their CostUsd is NULL), by provider and model: what to add
-- to a price override file. Parameter: since (DateTime).
SELECT Provider, if(ResponseModel != '', ResponseModel, RequestModel) AS Model, count() AS Calls,
       min(Timestamp) AS FirstSeen, max(Timestamp) AS LastSeen
FROM {{db}}.genai_calls
WHERE CostUsd IS NULL AND Timestamp >= {since:DateTime}
GROUP BY Provider, Model
ORDER BY Calls DESC
