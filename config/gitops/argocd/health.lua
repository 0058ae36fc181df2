-- Argo CD health check for upgrades.changegate.dev/UpgradePlan.
-- Healthy once the plan has Completed; Degraded when it is Stalled, Failed
-- or RolledBack; Suspended while it waits for a person (an approval, a
-- promotion, a go/no-go, or spec.paused); Progressing otherwise.
-- Register it under resource.customizations.health.upgrades.changegate.dev_UpgradePlan
-- in the argocd-cm ConfigMap (see docs/gitops.md).
local hs = { status = "Progressing", message = "Waiting for changegate to observe the plan" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end

local function condition(kind)
  if obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local phase = obj.status.phase
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
local ready = condition("Ready")
hs.message = phase
if reconciling ~= nil and reconciling.message ~= nil and reconciling.message ~= "" then
  hs.message = phase .. ": " .. reconciling.message
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for changegate to observe the latest spec"
elseif phase == "Completed" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
elseif (stalled ~= nil and stalled.status == "True") or phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
  if stalled ~= nil and stalled.message ~= nil then
    hs.message = phase .. ": " .. stalled.message
  end
elseif reconciling ~= nil and reconciling.status == "False" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
return hs
