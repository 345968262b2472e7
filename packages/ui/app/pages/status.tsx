export const StatusPage = () => <p>Status</p>
