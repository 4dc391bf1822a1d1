"""What the tiers are used for: monitoring and alerts, notification, the CRM playbook, publishing
for BI, the monthly report and its charts."""
